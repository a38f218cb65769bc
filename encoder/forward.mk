# encoder: forward
