"""Stage 3 (rule `train`): ES and GRPO fine-tuning, one run per (model, method, task, seed)."""
