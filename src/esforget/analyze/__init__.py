"""Stage 5 (rule `analyze_weights`): how far each checkpoint moved from its base, tensor by tensor."""
