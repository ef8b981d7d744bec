"""U-Net segmentation evaluator: does a segmenter trained on synthetic pairs work on real images?

This is the paper's utility test (Guibas et al. 2017, Table 1): train one segmenter on the real
training pairs and one on the synthetic pairs, test both on the real test images, compare F1.
"""
