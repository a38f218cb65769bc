# bench: recall
