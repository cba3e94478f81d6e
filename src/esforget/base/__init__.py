"""Stage 2 (rule `prepare_base_model`): each model's base as a Hugging Face directory; the tiny
model is built and pretrained here."""
