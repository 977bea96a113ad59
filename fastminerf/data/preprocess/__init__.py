"""``fastminerf preprocess``: from a monocular video to a trainable identity, offline.

Stages, one module each (read top to bottom):
    face_model_ict  ICT-FaceKit → FaceModel (+ .npz cache); regions: INSTA region ids
    video           decode frames, fps, audio.wav
    tracking        MediaPipe: 478 landmarks (+ ARKit scores, head transform) per frame
    correspondence  MediaPipe landmark ↔ ICT vertex table (mediapipe_ict.json, frozen;
                    derive_correspondence rebuilds it)
    fitting         robust least squares of identity, expressions, poses, focal (torch)
    framing         one square head-centred crop box for the clip, intrinsics
    masks           selfie segmentation restricted to head and neck → alpha
    qa              contact sheet, per-frame reprojection CSV, JSON summary
    pipeline        runs the stages and writes the identity with IdentityWriter

Importing this package imports neither MediaPipe nor OpenCV; the modules that need them
import them where used, with a message naming the ``preprocess`` extra.
"""
