"""segsynth's own loggers: TensorBoard event files and MLflow runs, chosen in a recipe.

``loggers: [tensorboard]`` or ``loggers: [{name: mlflow, params: {experiment: retina}}]``. Each
needs its optional package (``pip install 'segsynth[tensorboard]'``, ``'segsynth[mlflow]'``);
without it the recipe is refused with exit 2 naming the extra. ``losses.csv`` stays the record
the report reads; loggers are for people who already watch their runs elsewhere.
"""
