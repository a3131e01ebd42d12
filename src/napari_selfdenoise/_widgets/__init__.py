"""napari dock widgets (Qt): Train, Calibrate and Predict.

The manifest imports each widget module directly (``_widgets.train_widget:TrainWidget``),
so importing this package pulls in neither Qt nor torch.
"""
