"""The thesis's methods on plain ``nn.Module``s: models, data, masks, saliency, pruning,
training and its optimizers and schedules, with the small helpers they share (argument
checks, seeds, threads, timing). Imports nothing else of pruninglab (docs/design.md)."""
