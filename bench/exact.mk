# bench: exact
