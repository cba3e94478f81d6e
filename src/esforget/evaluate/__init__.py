"""Stage 4 (rules `evaluate_base`, `evaluate_retention`): every checkpoint on every evaluation task."""
