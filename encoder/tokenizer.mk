# encoder: tokenizer
