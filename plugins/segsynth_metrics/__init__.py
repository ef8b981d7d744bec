"""Intensity-histogram KL evaluator: do synthetic images have the real images' grey-level make-up?

A cheap, model-free fidelity check beside the U-Net utility test: it catches washed-out,
over-saturated or colour-shifted generators that a segmenter might still cope with.
"""
