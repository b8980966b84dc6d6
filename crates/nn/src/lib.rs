//! A small GPT that really trains (candle), KV cache, sampling, speculative decoding, MoE.
