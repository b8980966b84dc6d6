//! Collective-communication algorithms and network models (analytical alpha-beta and max-min fair flows).
