"""Bones and jaw of the canonical head, derived from the skin with soft-tissue depths.

Bone is everything inside the head deeper than the published soft-tissue depth below the
skin (ANATOMY.md: De Greef et al. 2006, Stephan and Simpson's meta-analyses), so skull and
mandible follow this head's own shape with no registration step. (The ArtiSynth bones
would need a landmark + non-rigid registration to the ICT head whose residual error, at
the depths involved — 2–20 mm — is of the same size as the tissue itself; depths measured
from this skin are exact by construction and morph with the identity later.)

The mandible is the bone between the occlusal plane (through the temporomandibular hinge
axis and the lips' contact line) and the mandibular plane (through the chin and both jaw
angles, raised by their tissue depths). The hinge sits about 1.3 cm in front of and
1.8 cm below the top of the jaw line at the ear (the TMJ, 1–1.5 cm in front of the tragus).
A jaw pose (opening degrees, lateral and protrusion mm) is a rigid transform about it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .face_model import JAWLINE_LEFT, JAWLINE_RIGHT, FaceModel
from .tissue import OUTER_SKIN_REGIONS

# (landmark or vertex anchor, soft-tissue depth in cm); left side mirrored automatically.
# Multi-PIE landmarks: 8 menton, 27 nasion, 30 nose tip, 33 subnasale, 51/57 lip centres.
SKULL, JAW = 1, 2

TISSUE_DEPTHS_CM = (
    ("point", (0.0, 9.0, 10.5), 0.5),  # forehead
    ("point", (0.0, 6.0, 11.0), 0.55),  # glabella
    ("landmark", 27, 0.65),  # nasion
    ("point", (0.0, 2.0, 12.2), 0.25),  # end of the nasal bones
    ("landmark", 30, 1.6),  # nose tip: cartilage, all soft
    ("landmark", 33, 1.4),  # subnasale
    ("landmark", 51, 1.15),  # mid-philtrum / upper lip
    ("landmark", 57, 1.2),  # lower lip
    ("point", (0.0, -5.4, 11.0), 1.2),  # chin-lip fold
    ("point", (0.0, -6.6, 11.1), 1.1),  # mental eminence
    ("landmark", 8, 0.7),  # menton
    ("point", (-5.6, 2.2, 7.8), 0.7),  # lateral orbit
    ("point", (-6.6, 1.5, 5.0), 0.7),  # zygomatic arch
    ("point", (-5.6, -1.5, 7.0), 1.8),  # cheek over the masseter
    ("point", (-6.3, -3.9, 3.7), 1.5),  # gonion
    ("point", (-3.5, -1.8, 9.6), 1.6),  # nasolabial region, above the canine
    ("point", (0.0, 12.0, 5.0), 0.6),  # scalp, vertex
    ("point", (-7.5, 6.0, 1.0), 0.6),  # scalp, temple
    ("point", (0.0, -11.0, 6.0), 3.0),  # throat: all soft down to the clip
    ("point", (-5.0, -11.0, 0.0), 3.0),  # side of the neck
)
HINGE_OFFSET_CM = np.array([1.3, -1.8, -0.3], dtype=np.float32)  # from jaw line top, right side

# Anatomical jaw limits (ANATOMY.md: opening 40–55 mm at the incisors, lateral 8–12 mm,
# protrusion 7–10 mm). With the incisors ~10 cm from the hinge, 28° ≈ 50 mm of opening.
JAW_LIMITS = {
    "opening_deg": (-2.0, 28.0),
    "lateral_mm": (-10.0, 10.0),
    "protrusion_mm": (-2.0, 8.0),
}
# Past pure rotation (the first few degrees) the condyles glide forward.
CONDYLE_GLIDE_START_DEG = 5.0
# The soft band between skull and jaw (masseter, pterygoids, buccal fat) is anatomy, the
# same width on every mesh: at least this, and at least half an element so that no element
# holds both a skull and a jaw node. With the HR mesh's 0.2 cm band the tissue behind the
# ramus was sheared across 4 mm as the jaw opened (78 inverted HR elements, issue 19).
SOFT_BAND_CM = 0.6
CONDYLE_GLIDE_CM_PER_DEG = 0.07


@dataclass(frozen=True)
class JawPose:
    """Jaw pose at the interface: opening (degrees), lateral shift and protrusion (mm)."""

    opening_deg: float = 0.0
    lateral_mm: float = 0.0
    protrusion_mm: float = 0.0


@dataclass
class Anatomy:
    """Bones and hinge of one head. hinge_left/right (3,) cm; ``skin_depths`` (S,) cm at
    the outer-skin vertices ``skin_vertices`` (S,) ICT indices; planes as (normal, offset)
    with n·x + d > 0 on the named side."""

    hinge_left: np.ndarray
    hinge_right: np.ndarray
    skin_vertices: np.ndarray
    skin_positions: np.ndarray
    skin_depths: np.ndarray
    attachment_positions: np.ndarray  # (K, 3) gum points soft tissue is attached to
    attachment_labels: np.ndarray  # (K,) int8 SKULL (upper) or JAW (lower)
    occlusal_plane: np.ndarray  # (4,) positive below (toward the jaw)
    mandibular_plane: np.ndarray  # (4,) positive above (toward the jaw)
    ramus_back_z: float

    @property
    def hinge_centre(self) -> np.ndarray:
        return 0.5 * (self.hinge_left + self.hinge_right)

    def tissue_depth_at(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(distance to the outer skin (P,), tissue depth there (P,)) in cm."""
        from scipy.spatial import cKDTree

        distance, nearest = cKDTree(self.skin_positions).query(points)
        return distance.astype(np.float32), self.skin_depths[nearest]

    def bone_labels(
        self, points: np.ndarray, inside: np.ndarray, attach_radius: float = 0.3, gap: float = 0.3
    ) -> np.ndarray:
        """Per point (P,) int8: 0 soft tissue, SKULL or JAW. ``inside`` (P,) bool marks
        points inside the tissue surface (points outside are bone only as attachments).

        Bone is deeper than the tissue depth; it is jaw between the occlusal and mandibular
        planes in front of the ramus. Below the mandible (the submandibular tissue and the
        front of the neck) stays soft. A soft band ``gap`` cm to each side of the occlusal
        plane and of the ramus border keeps every element from holding both a skull and a
        jaw node (the masseter, pterygoids and buccal fat lie there): pass about half the
        longest element edge. Points within ``attach_radius`` cm of the gums are attached
        to them, upper gums to the skull and lower to the jaw (the vestibule's lining), in
        front of the ramus only (the tongue's root and the pharynx behind it are soft)."""
        from scipy.spatial import cKDTree

        distance, depth = self.tissue_depth_at(points)
        occlusal, mandibular, ramus = self._jaw_coordinates(points)
        near_jaw = self.near_jaw(points, gap)
        band = near_jaw & ((occlusal < gap) | (ramus < gap))
        neck = (mandibular <= 0) & (ramus > -gap)
        bone = inside & (distance > depth) & ~band & ~neck
        labels = np.where(bone, SKULL, 0).astype(np.int8)
        labels[bone & self.in_jaw_region(points)] = JAW
        separation, nearest = cKDTree(self.attachment_positions).query(points)
        attached = (separation < attach_radius) & ~band & (ramus > gap)
        labels[attached] = self.attachment_labels[nearest[attached]]
        return labels

    def _jaw_coordinates(self, points: np.ndarray):
        """Signed distances (cm) to the occlusal plane (> 0 toward the jaw), the mandibular
        plane (> 0 above the lower border) and the ramus border (> 0 in front)."""
        homogeneous = np.c_[points, np.ones(len(points))]
        return (
            homogeneous @ self.occlusal_plane,
            homogeneous @ self.mandibular_plane,
            points[:, 2] - self.ramus_back_z,
        )

    def near_jaw(self, points: np.ndarray, gap: float) -> np.ndarray:
        """Points (P,) within ``gap`` cm of the jaw region or inside it: never skull."""
        occlusal, mandibular, ramus = self._jaw_coordinates(points)
        return (occlusal > -gap) & (mandibular > -gap) & (ramus > -gap)

    def in_jaw_region(self, points: np.ndarray) -> np.ndarray:
        """Points (P, 3) between the occlusal and mandibular planes, in front of the ramus."""
        homogeneous = np.c_[points, np.ones(len(points))]
        below_occlusal = homogeneous @ self.occlusal_plane > 0
        above_mandibular = homogeneous @ self.mandibular_plane > 0
        return below_occlusal & above_mandibular & (points[:, 2] > self.ramus_back_z)

    def jaw_transform(self, pose: JawPose) -> np.ndarray:
        """4×4 rigid transform (float64, cm) of the jaw for a pose; identity at zero."""
        angle = np.radians(pose.opening_deg)
        c, s = np.cos(angle), np.sin(angle)
        rotation = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])  # +x: chin goes down, back
        glide = max(0.0, pose.opening_deg - CONDYLE_GLIDE_START_DEG) * CONDYLE_GLIDE_CM_PER_DEG
        translation = np.array([pose.lateral_mm / 10.0, 0.0, pose.protrusion_mm / 10.0 + glide])
        centre = self.hinge_centre.astype(np.float64)
        transform = np.eye(4)
        transform[:3, :3] = rotation
        transform[:3, 3] = centre - rotation @ centre + translation
        return transform


def _plane_through(a, b, c, positive_side_point) -> np.ndarray:
    normal = np.cross(np.subtract(b, a), np.subtract(c, a)).astype(np.float64)
    normal /= np.linalg.norm(normal)
    plane = np.append(normal, -normal @ np.asarray(a, dtype=np.float64))
    if np.append(positive_side_point, 1.0) @ plane < 0:
        plane = -plane
    return plane


def _interpolate_depths(model: FaceModel, skin: np.ndarray) -> np.ndarray:
    """Depths (S,) at the skin vertices: Gaussian-weighted anchors (σ = 2 cm), mirrored."""
    from scipy.spatial import cKDTree

    skin_positions = model.neutral[skin]
    tree = cKDTree(skin_positions)
    anchors, depths = [], []
    for kind, where, depth in TISSUE_DEPTHS_CM:
        point = model.neutral[model.landmarks[where]] if kind == "landmark" else np.array(where)
        for mirrored in (point, point * np.array([-1.0, 1.0, 1.0])):
            anchors.append(skin_positions[tree.query(mirrored)[1]])
            depths.append(depth)
    anchors, depths = np.array(anchors), np.array(depths)
    d2 = ((skin_positions[:, None, :] - anchors[None]) ** 2).sum(-1)
    weights = np.exp(-d2 / (2 * 2.0**2)) + 1e-12
    return ((weights @ depths) / weights.sum(1)).astype(np.float32)


def build_anatomy(model: FaceModel) -> Anatomy:
    """Bones, hinge and jaw region of the ICT neutral head."""
    p = model.neutral.astype(np.float64)
    skin = np.concatenate([model.region(r) for r in OUTER_SKIN_REGIONS])
    top_right = p[JAWLINE_RIGHT[0]]
    hinge_right = top_right + HINGE_OFFSET_CM
    hinge_left = hinge_right * np.array([-1.0, 1.0, 1.0])
    lip_contact = 0.5 * (p[model.landmarks[62]] + p[model.landmarks[66]])
    occlusal = _plane_through(hinge_right, hinge_left, lip_contact, p[model.landmarks[8]])
    depths = _interpolate_depths(model, skin)
    depth_of = dict(zip(skin.tolist(), depths.tolist(), strict=True))
    # The mandible's lower border: through the skin menton and the jaw angles; below it the
    # submental tissue and neck are soft. (ICT's mouth socket reaches down to the incisor
    # roots, so the bony chin lies low and the plane must not cut it off.)
    menton = p[model.landmarks[8]]
    gonion_index = 8  # the jaw line's corner in the README's extended lists (ear → chin)
    gonions = []
    for line in (JAWLINE_RIGHT, JAWLINE_LEFT):
        vertex = line[gonion_index]
        inward = -p[vertex] * np.array([1.0, 0.0, 0.0]) / abs(p[vertex][0])
        gonions.append(p[vertex] + inward * depth_of[vertex])
    mandibular = _plane_through(gonions[0], gonions[1], menton, p[model.landmarks[57]])
    gums = model.region("gums_tongue")
    # The gums and the tongue along the dental arch, not the tongue's root behind the last
    # molars: attached to the jaw, the root swept 2 cm back at 28° and crushed the floor
    # of the mouth against the pharynx (issue 19). The teeth crowns are not attached
    # either: the lips slide over them.
    back_molars = min(p[model.region(r), 2].min() for r in ("upper_teeth", "lower_teeth"))
    attach = gums[p[gums, 2] > back_molars - 0.3]
    occlusal_side = np.c_[p[attach], np.ones(len(attach))] @ occlusal > 0
    return Anatomy(
        attachment_positions=model.neutral[attach],
        attachment_labels=np.where(occlusal_side, JAW, SKULL).astype(np.int8),
        hinge_left=hinge_left.astype(np.float32),
        hinge_right=hinge_right.astype(np.float32),
        skin_vertices=skin.astype(np.int32),
        skin_positions=model.neutral[skin],
        skin_depths=depths,
        occlusal_plane=occlusal,
        mandibular_plane=mandibular,
        ramus_back_z=float(top_right[2] - 0.8),
    )


def apply_transform(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points (P, 3) float32 moved by a 4×4 transform."""
    return (points @ transform[:3, :3].T + transform[:3, 3]).astype(np.float32)


def clamp_jaw_pose(pose: JawPose) -> tuple[JawPose, list[str]]:
    """The pose clamped to JAW_LIMITS, and a warning per clamped value."""
    values, warnings = {}, []
    for name, (low, high) in JAW_LIMITS.items():
        value = float(getattr(pose, name))
        clamped = min(max(value, low), high)
        if clamped != value:
            warnings.append(f"jaw {name} {value:g} clamped to [{low:g}, {high:g}]")
        values[name] = clamped
    return JawPose(**values), warnings
