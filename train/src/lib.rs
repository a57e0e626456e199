//! Training algorithms (SFT, GRPO/RLVR, reward models) over a small policy trait.
