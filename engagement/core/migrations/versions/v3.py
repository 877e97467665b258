"""Schema v3: the per-second means of the Face Landmarker's blendshapes (`window_features.bs_<name>`,
nullable: older runs and, for the expression ones, runs under the `eu-ai-act` profile have none).

The names are written out here, not taken from `engagement.core.records`, so that a later change of
the landmarker never changes what this revision does.
"""

from sqlalchemy import Column, Float

from engagement.core.migrations.ops import add_columns

revision = "v3"
down_revision = "v2"
branch_labels = None
depends_on = None

BLENDSHAPES = (
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight",
    "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft",
    "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight",
    "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight",
    "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight",
)


def upgrade() -> None:
    add_columns("window_features", *(Column(f"bs_{name}", Float) for name in BLENDSHAPES))
