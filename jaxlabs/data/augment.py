"""On-device augmentation: Lab D's and Lab F's torchvision pipelines, in jax.numpy.

The report tried `RandomRotation(10)`, `RandomAffine(0, translate=(0.1, 0.1))` and
`ColorJitter(brightness=0.2)`. Here rotation and translation are one affine warp (a single
bilinear resample instead of two nearest-neighbour ones), pixels from outside the image are 0
like torchvision's fill, and everything is jittable and vmappable, so a batch is augmented
inside the training scan without a host round trip. Lab F's course script used
`RandomCrop(32, padding=4)` + `RandomHorizontalFlip()`: :func:`crop_flip`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.ndimage import map_coordinates


def warp(image: jax.Array, angle_deg: jax.Array, shift_yx: jax.Array) -> jax.Array:
    """Rotate `image` (H, W, C) by `angle_deg` counter-clockwise about its centre, then shift it
    by `shift_yx` = (down, right) pixels. Bilinear sampling, zero outside. Returns (H, W, C)."""
    h, w, _ = image.shape
    theta = jnp.deg2rad(angle_deg)
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    cy, cx = (h - 1) / 2, (w - 1) / 2  # pixel-centre convention: rot by 90 deg is exact
    y, x = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij")
    # Inverse map: each output pixel reads the input at R(-theta) (p - centre - shift) + centre.
    # With rows pointing down, the forward map of a counter-clockwise turn is
    # x' = x cos + y sin, y' = -x sin + y cos; its inverse is the transpose.
    dy, dx = y - cy - shift_yx[0], x - cx - shift_yx[1]
    src_y = cy + dx * sin + dy * cos  # (H, W)
    src_x = cx + dx * cos - dy * sin  # (H, W)
    sample = lambda channel: map_coordinates(channel, [src_y, src_x], order=1, mode="constant", cval=0.0)
    return jax.vmap(sample, in_axes=2, out_axes=2)(image)


def augment(
    key: jax.Array,
    images: jax.Array,
    rotation_deg: float = 10.0,
    translate: float = 0.1,
    brightness: float = 0.2,
    value_range: tuple[float, float] | None = (0.0, 1.0),
) -> jax.Array:
    """Randomly rotate, shift and brighten each image of a batch (B, H, W, C) float32.

    Per image: angle ~ U[-rotation_deg, rotation_deg]; shift ~ U[-translate, translate] of the
    height and width, rounded to whole pixels as torchvision does; brightness is a
    MULTIPLICATIVE factor ~ U[1 - brightness, 1 + brightness], as ColorJitter(brightness=0.2).
    Like torchvision, results are clipped to `value_range` (images in [0, 1], so augment before
    normalising); pass None to skip clipping. Zero parameters give the images back unchanged.
    """
    b, h, w, _ = images.shape
    k_angle, k_shift, k_bright = jax.random.split(key, 3)
    angles = jax.random.uniform(k_angle, (b,), minval=-1.0, maxval=1.0) * rotation_deg  # (B,)
    extent = jnp.array([h, w], jnp.float32) * translate  # (2,) largest shift, pixels
    shifts = jnp.round(jax.random.uniform(k_shift, (b, 2), minval=-1.0, maxval=1.0) * extent)  # (B, 2)
    factors = 1.0 + jax.random.uniform(k_bright, (b,), minval=-1.0, maxval=1.0) * brightness  # (B,)
    out = jax.vmap(warp)(images, angles, shifts) * factors[:, None, None, None]
    return out if value_range is None else jnp.clip(out, *value_range)


def crop_flip(key: jax.Array, images: jax.Array, pad: int = 4) -> jax.Array:
    """``RandomCrop(size, padding=pad)`` then ``RandomHorizontalFlip()`` per image of (B, H, W, C)
    in [0, 1]: zero padding (black, as torchvision pads the image before ToTensor/Normalize)."""
    crop_key, flip_key = jax.random.split(key)
    return random_flip(flip_key, random_crop(crop_key, images, pad))


def random_crop(key: jax.Array, images: jax.Array, pad: int = 4) -> jax.Array:
    """``RandomCrop(size, padding=pad)`` per image of (B, H, W, C), zero padding."""
    b, h, w, c = images.shape
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    corners = jax.random.randint(key, (b, 2), 0, 2 * pad + 1)  # (B, 2) top-left in the padded image
    return jax.vmap(lambda im, yx: jax.lax.dynamic_slice(im, (yx[0], yx[1], 0), (h, w, c)))(padded, corners)


def random_flip(key: jax.Array, images: jax.Array) -> jax.Array:
    """``RandomHorizontalFlip()`` per image of (B, H, W, C): half of them mirrored left-right."""
    flip = jax.random.bernoulli(key, 0.5, (images.shape[0],))
    return jnp.where(flip[:, None, None, None], images[:, :, ::-1], images)
