# encoder: image
