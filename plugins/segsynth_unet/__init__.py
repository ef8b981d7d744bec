"""U-Net segmentation evaluator: does a segmenter trained on synthetic pairs work on real images?

This is the paper's utility test (Guibas et al. 2017, Table 1) turned into a protocol reviewers
can trust (docs/evaluation.md): segmenters trained on real, on as many synthetic, on all
synthetic and on real plus synthetic pairs, each over several seeds, scored on the real test
images inside the field of view; plus Stage-II mask fidelity and feature-space distances (KID,
precision/recall) measured with the frozen real-trained segmenter.
"""
