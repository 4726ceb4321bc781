"""Time to solve: the adding problem, the models trained on it, the training of one run to a
target, a preset's runs into their files, and the report and figures of those files. Built on the
sweep (the models' parameter counts), the render helpers and the core."""
