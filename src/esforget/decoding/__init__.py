"""Batched greedy decoding and the greedy scorer that ES fitness, validation and the generative
probe share."""
