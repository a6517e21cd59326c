//! `fuse_pad_and_conv`, `fuse_resize_and_conv`, `fuse_resize_pad_and_conv`: fold a MirrorPad
//! and/or a ResizeBilinear in front of a Conv2D into TensorFlow's FusedPadConv2D or
//! FusedResizeAndPadConv2D (see [`crate::rewrite::fused_convolutions`] for where they differ
//! from TensorFlow's transforms).

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::proto::GraphDef;
use crate::rewrite::fused_convolutions::{fuse_convolutions, Fusion};

pub struct FusePadAndConv;
pub struct FuseResizeAndConv;
pub struct FuseResizePadAndConv;

fn apply_kind(fusion: Fusion, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
    let protected = context.protected_names();
    let skipped = fuse_convolutions(graph, fusion, &protected).map_err(|e| context.error(e.0))?;
    for message in skipped {
        context.warn(message);
    }
    Ok(())
}

macro_rules! fusion {
    ($ty:ident, $name:literal, $summary:literal, $kind:expr) => {
        impl Transform for $ty {
            fn name(&self) -> &str {
                $name
            }

            fn summary(&self) -> &str {
                $summary
            }

            fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
                apply_kind($kind, graph, context)
            }
        }
    };
}

fusion!(
    FusePadAndConv,
    "fuse_pad_and_conv",
    "fold a MirrorPad before a Conv2D into FusedPadConv2D",
    Fusion::Pad
);
fusion!(
    FuseResizeAndConv,
    "fuse_resize_and_conv",
    "fold a ResizeBilinear before a Conv2D into FusedResizeAndPadConv2D",
    Fusion::Resize
);
fusion!(
    FuseResizePadAndConv,
    "fuse_resize_pad_and_conv",
    "fold ResizeBilinear -> MirrorPad before a Conv2D into FusedResizeAndPadConv2D",
    Fusion::ResizePad
);
