"""Audio-driven lip sync: speech → the coefficients that move the mouth → any identity of the cast.

Data flow, one module per stage::

    audio.py     any wav / mp3 / mp4 → 16 kHz mono float32 (ffmpeg of imageio-ffmpeg), one-line errors
    features.py  → [T, D] features at the video's frame rate (log-mel; + English phone occupancies)
    model.py     → [T, K] mouth/jaw coefficients (dilated temporal convs, ±7 frames or causal)
    train.py     trained on the cast's own tracked clips + audio.wav (velocity loss, speaker codes)
    checkpoint.py  the model file (tensors + plain values, torch.load(weights_only=True))
    drive.py     → [T, E] full expressions of identity A (the rest + head pose from A's frames), render
    evaluate.py  offline metrics (jaw-open correlation, mouth MAE, lip vertex error, offset) + baselines

Commands: ``fastminerf lipsync-train`` (or ``train --lipsync``), ``fastminerf lipsync``; the preview
takes ``--audio`` files and uploads (:mod:`fastminerf.viewer.audio`).
"""
