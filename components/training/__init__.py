"""The Trainer: run_fn (TFX's entry point), train() on arrays with nothing of TFX, the
recipes' numbers (`recipes`) and their typed settings (`config`), the models, optimizer,
schedules, augmentation, test-time augmentation, the device set-up and warm start."""
