# encoder: model
