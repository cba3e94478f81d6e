"""Stage 1 (rule `prepare_data`): each task's splits from its source, with a manifest."""
