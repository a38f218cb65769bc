# bench: encoder
