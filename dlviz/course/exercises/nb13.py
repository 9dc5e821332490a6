"""Exercises of notebook 13 (style transfer and texture synthesis)."""
from . import register
from ._answers import square_side

# --- 09.1 A Gram matrix by hand -------------------------------------------------------------------------------


def _gram_solution():
    def gram(features):
        # (N, C, H, W) -> (N, C, C): for every pair of channels, the mean over positions of their product
        n, c, h, w = features.shape
        flat = features.reshape(n, c, h * w)
        return flat @ flat.transpose(1, 2) / (h * w)
    return gram


def _gram_check(answer):
    import torch

    from dlviz.synthesis.style import gram_matrix

    generator = torch.Generator().manual_seed(0)
    for shape in ((2, 3, 4, 5), (1, 6, 7, 3)):
        features = torch.rand(shape, generator=generator)
        got = torch.as_tensor(answer(features.clone()))
        expected = gram_matrix(features)
        if tuple(got.shape) != tuple(expected.shape):
            return False, (f"for features of shape {shape} expected a Gram matrix of shape {tuple(expected.shape)} "
                           f"(N, C, C), got {tuple(got.shape)}: multiply F (C x HW) by its transpose, not the other way")
        if not torch.allclose(got.float(), expected, rtol=1e-4, atol=1e-6):
            ratio = float(got.float().mean() / expected.mean())
            return False, (f"the values differ from F F^T / (H W) (your mean is {ratio:.3g} times the expected one): "
                           "average over the H W positions, not over channels too, and do not forget to average")
    return True, "G = F F^T / (H W), one (C, C) matrix per image, as dlviz.synthesis.style.gram_matrix computes it"


def _gram_no_mean(features):
    flat = features.flatten(2)
    return flat @ flat.transpose(1, 2)


def _gram_positions(features):
    flat = features.flatten(2)
    return flat.transpose(1, 2) @ flat / flat.shape[1]


def _gram_all(features):
    flat = features.flatten(2)
    return flat @ flat.transpose(1, 2) / flat[0].numel()


register("13.1", "A Gram matrix by hand", check=_gram_check, solution=_gram_solution,
         wrong=[_gram_no_mean, _gram_positions, _gram_all])


# --- 09.2 The receptive field of the content layer --------------------------------------------------------------


def _content_field_solution():
    # walk VGG-19 up to conv4_2: a 3x3 convolution widens the field by 2 steps, a 2x2 pooling by 1 step and
    # doubles the step
    plan = ["conv"] * 2 + ["pool"] + ["conv"] * 2 + ["pool"] + ["conv"] * 4 + ["pool"] + ["conv"] * 2  # ... conv4_2
    size, step = 1, 1
    for layer in plan:
        if layer == "conv":
            size += 2 * step
        else:
            size += 1 * step
            step *= 2
    return size


def _content_field_check(answer):
    side = square_side(answer)
    if side == 84:
        return True, ("84 x 84 pixels: conv4_1's 68, plus 2 steps of 8 pixels for conv4_2's 3x3 kernel -- larger "
                      "than a third of the 128-pixel photo, which is why conv4_2 keeps the layout but not the detail")
    if side == 68:
        return False, "68 is conv4_1's field; conv4_2 is one more 3x3 convolution after it"
    if side == 76:
        return False, "after three poolings a step of the grid is 8 pixels, so one 3x3 convolution adds 2 x 8 = 16"
    return False, f"expected the side of conv4_2's receptive field in pixels (an int); got {answer!r}"


register("13.2", "The receptive field of the content layer", check=_content_field_check,
         solution=_content_field_solution, wrong=[68, 76, 70, (84, 68)])


# --- 09.3 Two different images, one Gram matrix -----------------------------------------------------------------


def _same_gram_solution():
    import torch

    a = torch.rand(1, 4, 6, 6, generator=torch.Generator().manual_seed(0))
    b = a.flip(-1)          # the same values at mirrored positions: every channel product sums to the same
    return a, b


def _same_gram_check(answer):
    import torch

    from dlviz.synthesis.style import gram_matrix

    a, b = (torch.as_tensor(t).float() for t in answer)
    if a.dim() != 4 or a.shape != b.shape or a.shape[0] != 1:
        return False, f"expected two feature maps of the same shape (1, C, H, W), got {tuple(a.shape)} and {tuple(b.shape)}"
    if a.shape[1] < 2 or float(a.norm()) == 0:
        return False, "use at least 2 channels and a feature map that is not all zeros"
    if torch.allclose(a, b, atol=1e-3):
        return False, "the two feature maps are (almost) the same; the point is two *different* maps"
    ga, gb = gram_matrix(a), gram_matrix(b)
    if torch.allclose(ga, gb, rtol=1e-4, atol=1e-6 * float(ga.abs().max())):
        return True, ("different maps, one Gram matrix: it sums channel products over positions, so any "
                      "rearrangement of the positions (a flip, a shift, a shuffle) leaves it unchanged")
    worst = float((ga - gb).abs().max() / ga.abs().max())
    return False, f"their Gram matrices differ (largest difference {worst:.2%} of the largest entry)"


_A = [[[[1.0, 0.0], [0.5, 2.0]], [[0.0, 1.0], [1.0, 0.0]]]]
register("13.3", "Two different feature maps, one Gram matrix", check=_same_gram_check, solution=_same_gram_solution,
         wrong=[(_A, _A), (_A, [[[[2 * v for v in row] for row in ch] for ch in _A[0]]]),
                (_A, [[[[1.0, 0.0], [0.5, 1.0]], [[0.0, 1.0], [1.0, 0.0]]]])])


# --- 09.4 Keep the photo's colours ------------------------------------------------------------------------------

_RGB_TO_YIQ = [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]]


def _keep_colours_solution():
    import torch

    def keep_colours(result, photo):
        # luminance (Y) from the stylized result, colour (I, Q) from the photo, back to RGB
        to_yiq = torch.tensor(_RGB_TO_YIQ)
        yiq_result = torch.einsum("ij,jhw->ihw", to_yiq, result)
        yiq_photo = torch.einsum("ij,jhw->ihw", to_yiq, photo)
        mixed = torch.cat([yiq_result[:1], yiq_photo[1:]])
        return torch.einsum("ij,jhw->ihw", torch.linalg.inv(to_yiq), mixed).clamp(0, 1)
    return keep_colours


def _keep_colours_check(answer):
    import torch

    to_yiq = torch.tensor(_RGB_TO_YIQ)
    generator = torch.Generator().manual_seed(0)
    result = 0.35 + 0.3 * torch.rand(3, 8, 8, generator=generator)
    photo = 0.35 + 0.3 * torch.rand(3, 8, 8, generator=generator)
    out = torch.as_tensor(answer(result.clone(), photo.clone())).float()
    if tuple(out.shape) != (3, 8, 8):
        return False, f"expected an image of the same shape as the inputs, (3, 8, 8) here; got {tuple(out.shape)}"
    inside = ((out > 1e-3) & (out < 1 - 1e-3)).all(0)           # pixels that clamping to [0, 1] did not change
    if float(inside.float().mean()) < 0.9:
        return False, "most pixels of the result are at 0 or 1: the colour conversion is off"
    yiq = torch.einsum("ij,jhw->ihw", to_yiq, out)[:, inside]
    y_off = float((yiq[0] - torch.einsum("j,jn->n", to_yiq[0], result[:, inside])).abs().max())
    iq_off = float((yiq[1:] - torch.einsum("ij,jn->in", to_yiq[1:], photo[:, inside])).abs().max())
    if y_off < 0.01 and iq_off < 0.01:
        return True, "the luminance is the stylized result's, the colour (I and Q) the photo's"
    return False, (f"expected the result's luminance Y (off by up to {y_off:.3f} here) and the photo's I and Q "
                   f"(off by up to {iq_off:.3f}); Y = 0.299 R + 0.587 G + 0.114 B")


register("13.4", "Keep the photo's colours", check=_keep_colours_check, solution=_keep_colours_solution,
         wrong=[lambda result, photo: result, lambda result, photo: photo,
                lambda result, photo: _keep_colours_solution()(photo, result)])
