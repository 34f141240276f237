"""Running trials through Ray Tune: the driver, the trainable, Ray's session and placement, MLflow tracking, progress lines and failures."""
