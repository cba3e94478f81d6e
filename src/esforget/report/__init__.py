"""Stage 6 (rule `render_report`): the report page, its tables, figures and findings."""
