"""Physically grounded synthetic stand-in for the ZTF transient-spectra set (SEDM-like, R ~ 100).

Every spectrum is built as an astrophysical source observed through a low-resolution IFU:

1. **Source, rest frame.** A continuum (blackbody, power law) with line features: P-Cygni profiles
   for supernovae (absorption trough blueshifted to the photospheric velocity, emission at rest),
   Gaussian/Lorentzian emission lines for interaction, AGN, CVs and TDEs. Supernova temperature,
   velocity and line strengths evolve with phase. Host dust (Cardelli, Clayton & Mathis 1989, R_V=3.1)
   reddens the source.
2. **Host galaxy.** An old stellar population (red, 4000 A break, Ca II H&K, G band, Mg b, Na D, Ca
   triplet) mixed with a young one (A-star Balmer absorption) and, for star-forming hosts, nebular
   emission; it contributes a drawn fraction of the flux over the observed band.
3. **Redshift.** The rest-frame model is evaluated at lambda_obs / (1 + z) on a fine log-lambda grid
   (~150 km/s pixels; narrow lines are widened to >= 0.6 pixel so their flux is conserved).
4. **Atmosphere and calibration.** Milky Way extinction, telluric A/B/H2O band residuals in the
   observed frame, and a small power-law flux-calibration tilt.
5. **Instrument.** Gaussian line-spread function of constant FWHM = lambda / R (constant in
   log-lambda), binning into Nyquist-sampled pixels (d ln lambda = 1/200), noise with a drawn
   per-pixel S/N at the median flux, a source + sky variance split, lower throughput in the blue,
   more sky noise in the red and night-sky line residuals.
6. **Output**, as in the real set ("normalized flux interpolated onto 4096 points over 3850-8500 A"):
   linear interpolation onto ``wavelength_grid(n_points)``, then division by the median of the
   interpolated flux over that grid, so every spectrum has median 1 and no class is marked by flux level.

Model parameters (EW: rest equivalent width, emission positive; tau: peak optical depth of a P-Cygni
trough at maximum light, evolving as exp(growth * phase / 30 d); velocities at maximum light, falling
as (days since explosion / rise time)^-0.3)

============ ====================================================== ================ ============== ============ ============ ============
class        lines (rest A)                                         velocity / width continuum      phase (d)    redshift     host frac.
============ ====================================================== ================ ============== ============ ============ ============
SN Ia        Si II 6355 (tau 0.6-1.2, defining), Si II 5972 (weak),  v 10-12.5k km/s  BB 9-12 kK at  -15..+60     0.015-0.15   0-0.5
             S II 5454/5640 "W" (fades after max), Ca II 3934/3969,                   max, floor 5.5
             Ca II 8498/8542/8662 (grows), Fe II 4924/5018/5169,                      kK; UV line
             Mg II 4481, O I 7774; no H, no He                                        blanketing
SN Ib        He I 4471/5876/6678/7065 (tau 0.4-0.9, grows), Fe II,   v 7.5-11k        BB 7-10 kK     -15..+60     0.005-0.08   0-0.6
             Ca II H&K + IR, O I 7774 (weak), Si II 6355 (v. weak),
             Mg II 4481; no H
SN Ic        O I 7774 (strong), Ca II H&K + IR, Fe II (strong),      v 9-18k, broader BB 7-10 kK     -12..+60     0.005-0.08   0-0.6
             Si II 6355, Na I D, Mg II 4481; He I tau <= 0.05       troughs
SN IIP       H-alpha (emission 1.5-3 x tau, grows), H-beta, H-gamma, v 6.5-10k        BB 9-14 kK,    -7..+60      0.003-0.06   0-0.6
             Fe II, Na I D, Ca II IR (all appear late), Ca II H&K,                    cools to 5.5
             He I 5876 (early only)                                                   kK (recombin.)
SN IIb       H-alpha, H-beta (fade, e-fold ~ 38 d), He I (grows,      v 7.5-11k        BB 7.5-11 kK   -15..+60     0.005-0.08   0-0.6
             e-fold 30 d), Fe II, Ca II, O I: early ~ II, late ~ Ib
SN IIn       H-alpha EW 20-300 A: narrow core FWHM 200-1000 km/s +   ejecta v 5-10k,  BB 9-20 kK,    -12..+60     0.01-0.12    0-0.4
             Lorentzian (electron-scattering) wings FWHM 2-6k;       trough tau<=0.1  slow cooling
             H-beta 0.2-0.45 x, H-gamma, He I 5876 (narrow)
AGN          broad H-alpha EW 100-500, H-beta, H-gamma, H-delta,     broad FWHM       f_lambda ~     --           0.02-0.30    0.05-0.6
             He I 5876, He II 4686, Mg II 2798 (enters only at       2-8k, narrow     lambda^alpha,               (log-unif.)  (starlight
             z > 0.376), Fe II bumps 4570/5250; narrow [O III]       300-700 km/s     alpha -1.6 to                            in the
             5007 (EW 3-50)/4959 = 3:1, [N II] 6583/6548 = 3:1 with                   -0.4                                     aperture)
             narrow H-alpha, [S II] 6716/6731, [O I] 6300, [O II]
             3727, [Ne III] 3869
Cataclysmic  quiescent (60 %): double-peaked Balmer emission H-alpha  peaks split     disk BB 10-30  --           0 (Galactic) none
             EW 20-150, flat decrement, He I 4471/5876/6678/7065,    300-1500 km/s,   kK or lambda^
             He II 4686 (strong in 30 %, magnetic); outburst (40 %):  each FWHM       -3..-2; M-dwarf
             broad Balmer absorption + weak emission cores           500-1500         secondary <=30%
TDE          TDE-H (35 %): H-alpha EW 50-300, H-beta; TDE-H+He       FWHM 5-15k       BB 20-50 kK    --           0.015-0.20   0.1-0.6
             (50 %): H-alpha + He II 4686 EW 30-200; TDE-He (15 %):   km/s                                                     (post-
             He II 4686 EW 50-250 only                                                                                         starburst)
============ ====================================================== ================ ============== ============ ============ ============

Phase is drawn from a Beta(1.3, 2.2) over PHASE_RANGE, starting no earlier than 3 days after
explosion (rise times: Ia, Ib, IIb 18 d; Ic, IIn 15 d; IIP 10 d), so classification spectra cluster
near maximum. Redshift is log-uniform over the class range, weighting low z as in a magnitude-limited
sample; supernovae, AGN and TDEs get host dust E(B-V) ~ Exp(mean 0.1). Instrument, for every class:
R uniform 85-115; S/N per pixel log-uniform 3-50; variance = S/N-scaled (q * flux + (1 - q) * sky),
q uniform 0.3-0.9; Milky Way E(B-V) 0-0.15; telluric residual depths A band (7594-7680 A) 0-0.6,
B band (6867-6920 A) 0-0.3, H2O (7160-7340, 8130-8350 A) 0-0.15; calibration tilt (lambda/6000)^beta,
beta ~ N(0, 0.15). The named module constants below are the difficulty knobs.

Sources for the line lists, velocities, temperatures and their evolution: Filippenko 1997, ARA&A 35,
309 ("Optical spectra of supernovae"); Gal-Yam 2017, in Handbook of Supernovae ("Observational and
physical classification of supernovae"); Vanden Berk et al. 2001, AJ 122, 549 (composite quasar
spectrum, line EWs and continuum slope); Arcavi et al. 2014, ApJ 793, 38 and van Velzen et al. 2021,
ApJ 908, 4 (TDE temperatures, line widths and the TDE-H / H+He / He classes); Warner 1995,
"Cataclysmic Variable Stars" (disk continua, double-peaked lines, He II in magnetic systems);
Blagorodnova et al. 2018, PASP 130, 035003 (SEDM, R ~ 100); Fremling et al. 2020, ApJ 895, 32 and
Perley et al. 2020, ApJ 904, 35 (ZTF Bright Transient Survey: class mix and redshift ranges);
Cardelli, Clayton & Mathis 1989, ApJ 345, 245 (extinction law). Numbers not quoted from these
(EW scatter, phase growth rates, host mix, instrument noise shape) are our own plausible choices.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from trainables.data._base import write_torch_splits

CLASS_ORDER: tuple[str, ...] = (
    "SN Ia", "SN Ib", "SN Ic", "SN IIP", "SN IIb", "SN IIn", "AGN", "Cataclysmic", "TDE",
)
WAVE_MIN, WAVE_MAX, N_POINTS = 3850.0, 8500.0, 4096

# --- Difficulty knobs ---------------------------------------------------------------------------
SNR_RANGE: tuple[float, float] = (3.0, 50.0)             # per pixel at the median flux, log-uniform
RESOLUTION_RANGE: tuple[float, float] = (85.0, 115.0)    # R = lambda / FWHM
PHASE_RANGE: tuple[float, float] = (-15.0, 60.0)         # SN days from maximum light
LINE_STRENGTH_SCALE: float = 1.0                          # multiplies every SN optical depth
HOST_EBV_MEAN: float = 0.1                                # host dust, exponential E(B-V)
MW_EBV_RANGE: tuple[float, float] = (0.0, 0.15)
FLUX_TILT_SIGMA: float = 0.15                             # power-law index of the calibration error
TELLURIC_DEPTH: dict[str, tuple[float, float]] = {"A": (0.0, 0.6), "B": (0.0, 0.3), "H2O": (0.0, 0.15)}
HOST_FRACTION: dict[str, tuple[float, float]] = {
    "SN Ia": (0.0, 0.5), "SN Ib": (0.0, 0.6), "SN Ic": (0.0, 0.6), "SN IIP": (0.0, 0.6),
    "SN IIb": (0.0, 0.6), "SN IIn": (0.0, 0.4), "AGN": (0.05, 0.6), "Cataclysmic": (0.0, 0.0),
    "TDE": (0.1, 0.6),
}
REDSHIFT_RANGE: dict[str, tuple[float, float]] = {
    "SN Ia": (0.015, 0.15), "SN Ib": (0.005, 0.08), "SN Ic": (0.005, 0.08), "SN IIP": (0.003, 0.06),
    "SN IIb": (0.005, 0.08), "SN IIn": (0.01, 0.12), "AGN": (0.02, 0.30), "Cataclysmic": (0.0, 0.0),
    "TDE": (0.015, 0.20),
}
SN_VELOCITY_KMS: dict[str, tuple[float, float]] = {     # photospheric velocity at maximum light
    "SN Ia": (10000.0, 12500.0), "SN Ib": (7500.0, 11000.0), "SN Ic": (9000.0, 18000.0),
    "SN IIP": (6500.0, 10000.0), "SN IIb": (7500.0, 11000.0), "SN IIn": (5000.0, 10000.0),
}
SN_TEMPERATURE_K: dict[str, tuple[float, float]] = {    # colour temperature at maximum light
    "SN Ia": (9000.0, 12000.0), "SN Ib": (7000.0, 10000.0), "SN Ic": (7000.0, 10000.0),
    "SN IIP": (9000.0, 14000.0), "SN IIb": (7500.0, 11000.0), "SN IIn": (9000.0, 20000.0),
}
IIN_HALPHA_EW: tuple[float, float] = (20.0, 300.0)
IIN_NARROW_FWHM_KMS: tuple[float, float] = (200.0, 1000.0)
IIN_WING_FWHM_KMS: tuple[float, float] = (2000.0, 6000.0)
AGN_SLOPE_RANGE: tuple[float, float] = (-1.6, -0.4)      # alpha in f_lambda ~ lambda^alpha
AGN_BROAD_FWHM_KMS: tuple[float, float] = (2000.0, 8000.0)
CV_TEMPERATURE_K: tuple[float, float] = (10000.0, 30000.0)
CV_PEAK_SEPARATION_KMS: tuple[float, float] = (300.0, 1500.0)
CV_OUTBURST_FRACTION: float = 0.4
TDE_TEMPERATURE_K: tuple[float, float] = (20000.0, 50000.0)
TDE_FWHM_KMS: tuple[float, float] = (5000.0, 15000.0)
TDE_SUBTYPE_FRACTIONS: tuple[float, float, float] = (0.35, 0.5, 0.15)   # TDE-H, TDE-H+He, TDE-He



class Instrument(NamedTuple):
    """What the spectrograph does to every spectrum: resolution R = lambda / FWHM and per-pixel S/N
    (drawn per spectrum from these ranges), detector pixel size in ln lambda (Nyquist: 1 / (2 R)),
    the output wavelength range, where the blue throughput falls off and how much brighter the sky
    gets to the red. The physics of the sources is the same for every instrument."""

    name: str
    resolution: tuple[float, float]
    snr: tuple[float, float]
    pixel_dlnl: float
    wave: tuple[float, float]
    blue_edge: float
    sky_slope: float


SEDM = Instrument("SEDM-like (ZTF)", RESOLUTION_RANGE, SNR_RANGE, 1.0 / 200.0,   # Nyquist at R ~ 100
                  (WAVE_MIN, WAVE_MAX), 4000.0, 0.5)
# A medium-resolution long-slit spectrograph on a larger telescope (a second survey's follow-up):
# lines 5-10x narrower, redder coverage (Ca II H&K and [O II] fall off the blue end; the Ca II
# triplet and the Telluric A band sit well inside), a red-sensitive CCD, fainter targets.
MEDRES = Instrument("medium-resolution long-slit", (500.0, 1000.0), (2.0, 25.0), 1.0 / 2000.0,
                    (4400.0, 9200.0), 3700.0, 1.2)

# --- Fixed physics and instrument constants ---------------------------------------------------------
_C_KMS = 299792.458
_HC_OVER_K = 1.4387769e8                  # h c / k in Angstrom Kelvin
_FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
_FINE_PER_PIXEL = 10                      # fine model pixels per detector pixel (~150 km/s each)
_MODEL_MARGIN = (150.0, 200.0)            # observed-frame model range: output range + > 3 LSF sigma
_MIN_SIGMA_KMS = 0.6 * _C_KMS * SEDM.pixel_dlnl / _FINE_PER_PIXEL   # keeps sampled lines flux-conserving
_PHASE_SHAPE = (1.3, 2.2)                 # Beta shape of the phase draw
_VELOCITY_DECLINE = 0.3                   # v ~ t^-0.3 after explosion
_EMISSION_WIDTH = 0.45                    # P-Cygni emission sigma / absorption velocity
_TAU_MAX = 3.0
_SN_T_MAX = 25000.0
_SKY_LINES = (5577.3, 5892.9, 6300.3, 6363.8)
_SKY_RESIDUAL = 2.0                       # rms residual of a sky line, in units of the local noise
_TELLURIC_WINDOWS = {                     # observed A: (start, end, edge softness) of each band
    "A": ((7594.0, 7680.0, 5.0),), "B": ((6867.0, 6920.0, 4.0),),
    "H2O": ((7160.0, 7340.0, 15.0), (8130.0, 8350.0, 20.0)),
}

# Rest wavelengths (Angstrom).
_HA, _HB, _HG, _HD, _HEPS, _H8 = 6562.8, 4861.3, 4340.5, 4101.7, 3970.1, 3889.0
_HE_I = (4471.5, 5875.6, 6678.2, 7065.2)
_HE_II = 4685.7
_CA_HK = (3933.7, 3968.5)
_CA_IR = (8498.0, 8542.1, 8662.1)
_FE_II = (4923.9, 5018.4, 5169.0)
_NA_D = 5892.9
_O_I = 7774.0
_MG_II_4481 = 4481.2


class _Feature(NamedTuple):
    """One ion's P-Cygni lines sharing optical depth, velocity and phase evolution."""

    rest: tuple[float, ...]
    weights: tuple[float, ...]       # relative optical depths within the multiplet
    tau: tuple[float, float]         # optical depth at maximum light
    growth: float                    # e-folds of tau per 30 days after maximum (negative: fades)
    velocity: float                  # trough velocity / photospheric velocity
    emission: tuple[float, float]    # emission peak / tau


class _Evolution(NamedTuple):
    """Class-wide supernova evolution."""

    rise: float                      # days from explosion to maximum
    t_floor: float                   # colour temperature the photosphere cools to (K)
    cool_days: float                 # e-folding time of the cooling
    width: tuple[float, float]       # trough sigma / trough velocity
    blanket: tuple[float, float]     # wavelength where metal-line blanketing halves the UV flux (A)
    blanket_growth: float            # A per day: blanketing spreads redward as the ejecta cool


_HE_I_W = (0.4, 1.0, 0.45, 0.5)
_CA_HK_W = (1.0, 0.9)
_CA_IR_W = (0.11, 1.0, 0.55)         # gf ratios of the triplet
_FE_II_W = (0.6, 0.8, 1.0)

_SN_FEATURES: dict[str, tuple[_Feature, ...]] = {
    "SN Ia": (
        _Feature((6355.0,), (1.0,), (0.6, 1.2), -0.3, 1.0, (0.2, 0.5)),
        _Feature((5972.0,), (1.0,), (0.05, 0.3), -0.3, 1.0, (0.1, 0.3)),
        _Feature((5454.0, 5640.0), (1.0, 1.0), (0.2, 0.5), -2.0, 0.85, (0.0, 0.2)),
        _Feature(_CA_HK, _CA_HK_W, (0.8, 1.6), 0.0, 1.2, (0.2, 0.5)),
        _Feature(_CA_IR, _CA_IR_W, (0.3, 0.9), 0.8, 1.15, (0.2, 0.6)),
        _Feature(_FE_II, _FE_II_W, (0.15, 0.4), 0.9, 0.9, (0.1, 0.3)),
        _Feature((_MG_II_4481,), (1.0,), (0.3, 0.7), 0.0, 0.95, (0.1, 0.3)),
        _Feature((_O_I,), (1.0,), (0.1, 0.3), 0.0, 0.9, (0.1, 0.3)),
    ),
    "SN Ib": (
        _Feature(_HE_I, _HE_I_W, (0.4, 0.9), 0.5, 0.9, (0.2, 0.5)),
        _Feature(_FE_II, _FE_II_W, (0.25, 0.6), 0.3, 0.85, (0.1, 0.3)),
        _Feature(_CA_HK, _CA_HK_W, (0.6, 1.2), 0.0, 1.1, (0.2, 0.5)),
        _Feature(_CA_IR, _CA_IR_W, (0.3, 0.8), 0.8, 1.05, (0.3, 0.8)),
        _Feature((_O_I,), (1.0,), (0.05, 0.3), 0.5, 0.9, (0.1, 0.4)),
        _Feature((6355.0,), (1.0,), (0.0, 0.15), -1.0, 1.0, (0.1, 0.3)),
        _Feature((_MG_II_4481,), (1.0,), (0.1, 0.4), 0.0, 0.95, (0.1, 0.3)),
    ),
    "SN Ic": (
        _Feature((_O_I,), (1.0,), (0.3, 0.8), 0.4, 0.9, (0.2, 0.5)),
        _Feature(_CA_HK, _CA_HK_W, (0.7, 1.4), 0.0, 1.1, (0.2, 0.5)),
        _Feature(_CA_IR, _CA_IR_W, (0.4, 1.0), 0.7, 1.05, (0.3, 0.8)),
        _Feature(_FE_II, _FE_II_W, (0.4, 0.9), 0.3, 0.9, (0.1, 0.3)),
        _Feature((6355.0,), (1.0,), (0.05, 0.35), -0.5, 1.0, (0.1, 0.3)),
        _Feature((_NA_D,), (1.0,), (0.05, 0.3), 0.5, 0.95, (0.1, 0.4)),
        _Feature((_MG_II_4481,), (1.0,), (0.2, 0.5), 0.0, 0.95, (0.1, 0.3)),
        _Feature(_HE_I, _HE_I_W, (0.0, 0.05), 0.0, 0.9, (0.1, 0.3)),
    ),
    "SN IIP": (
        _Feature((_HA,), (1.0,), (0.25, 0.6), 0.6, 1.0, (1.5, 3.0)),
        _Feature((_HB,), (1.0,), (0.25, 0.5), 0.3, 1.0, (0.4, 0.8)),
        _Feature((_HG,), (1.0,), (0.15, 0.35), 0.0, 1.0, (0.2, 0.5)),
        _Feature(_FE_II, _FE_II_W, (0.01, 0.06), 1.8, 0.7, (0.1, 0.3)),
        _Feature((_NA_D,), (1.0,), (0.01, 0.06), 1.6, 0.8, (0.3, 0.8)),
        _Feature(_CA_IR, _CA_IR_W, (0.03, 0.15), 1.4, 0.9, (0.5, 1.2)),
        _Feature(_CA_HK, _CA_HK_W, (0.2, 0.5), 0.6, 1.0, (0.2, 0.5)),
        _Feature((_HE_I[1],), (1.0,), (0.1, 0.3), -2.5, 1.0, (0.2, 0.5)),
    ),
    "SN IIb": (
        _Feature((_HA,), (1.0,), (0.4, 0.8), -0.8, 1.1, (0.8, 1.6)),
        _Feature((_HB,), (1.0,), (0.2, 0.5), -0.8, 1.1, (0.3, 0.6)),
        _Feature(_HE_I, _HE_I_W, (0.15, 0.4), 1.0, 0.9, (0.2, 0.5)),
        _Feature(_FE_II, _FE_II_W, (0.2, 0.5), 0.4, 0.85, (0.1, 0.3)),
        _Feature(_CA_HK, _CA_HK_W, (0.5, 1.0), 0.0, 1.1, (0.2, 0.5)),
        _Feature(_CA_IR, _CA_IR_W, (0.2, 0.6), 0.8, 1.0, (0.3, 0.8)),
        _Feature((_O_I,), (1.0,), (0.05, 0.2), 0.5, 0.9, (0.1, 0.4)),
    ),
    "SN IIn": (
        _Feature((_HA,), (1.0,), (0.0, 0.1), 0.0, 1.0, (0.0, 0.0)),
        _Feature((_HB,), (1.0,), (0.0, 0.08), 0.0, 1.0, (0.0, 0.0)),
    ),
}

_SN_EVOLUTION: dict[str, _Evolution] = {
    "SN Ia": _Evolution(18.0, 5500.0, 25.0, (0.25, 0.4), (3700.0, 4200.0), 5.0),
    "SN Ib": _Evolution(18.0, 5000.0, 25.0, (0.25, 0.4), (3500.0, 4000.0), 5.0),
    "SN Ic": _Evolution(15.0, 5000.0, 25.0, (0.3, 0.5), (3500.0, 4000.0), 5.0),
    "SN IIP": _Evolution(10.0, 5500.0, 20.0, (0.25, 0.4), (2900.0, 3300.0), 15.0),
    "SN IIb": _Evolution(18.0, 5000.0, 25.0, (0.25, 0.4), (3300.0, 3800.0), 6.0),
    "SN IIn": _Evolution(15.0, 7000.0, 60.0, (0.25, 0.4), (2700.0, 3100.0), 2.0),
}

# Host stellar populations: (rest A, EW A, FWHM km/s). Old: K-giant dominated absorption; young: A stars.
_OLD_ABSORPTION = (
    (3933.7, 11.0, 1500.0), (3968.5, 8.0, 1500.0), (4101.7, 1.5, 1200.0), (4304.0, 5.0, 3000.0),
    (4861.3, 2.0, 1200.0), (5175.0, 4.0, 1500.0), (5270.0, 2.5, 800.0), (5335.0, 2.0, 800.0),
    (5892.9, 3.0, 800.0), (6562.8, 1.5, 800.0), (8498.0, 1.0, 600.0), (8542.1, 3.0, 600.0),
    (8662.1, 2.5, 600.0),
)
_YOUNG_ABSORPTION = (
    (_HB, 6.0, 2500.0), (_HG, 6.0, 2500.0), (_HD, 7.0, 2500.0), (_HEPS, 5.0, 2500.0), (_H8, 4.0, 2500.0),
    (_HA, 4.0, 2500.0), (3933.7, 2.0, 1000.0),
)
# Nebular lines of a star-forming host: (rest A, EW relative to H-alpha range).
_NEBULAR = (
    (6583.5, (0.2, 0.5)), (6548.0, (0.067, 0.167)), (_HB, (0.25, 0.4)), (5006.8, (0.1, 1.0)),
    (3727.4, (0.3, 1.0)), (6716.4, (0.1, 0.25)), (6730.8, (0.08, 0.2)),
)
# (young-population fraction range, nebular-emission scale) of the hosts of each class: core-collapse
# SNe trace star formation, SNe Ia do not; TDE hosts are post-starburst (strong Balmer absorption,
# weak emission; Arcavi et al. 2014).
_HOST_KIND: dict[str, tuple[tuple[float, float], float]] = {
    "SN Ia": ((0.0, 0.8), 1.0), "SN Ib": ((0.3, 1.0), 1.0), "SN Ic": ((0.3, 1.0), 1.0),
    "SN IIP": ((0.3, 1.0), 1.0), "SN IIb": ((0.3, 1.0), 1.0), "SN IIn": ((0.2, 1.0), 1.0),
    "AGN": ((0.0, 0.6), 0.5), "TDE": ((0.3, 0.7), 0.2),
}


class _Grids(NamedTuple):
    """Observed-frame model and detector grids, shared by every spectrum."""

    ln_fine: np.ndarray      # ln lambda of the fine model pixels
    lam_fine: np.ndarray
    band_fine: np.ndarray    # fine pixels inside the output range
    lam_pix: np.ndarray      # detector pixel centres
    band_pix: np.ndarray
    noise_shape: np.ndarray  # relative sky variance / throughput per detector pixel


@lru_cache(maxsize=2)
def _grids(instrument: Instrument = SEDM) -> _Grids:
    lo, hi = instrument.wave
    model_min, model_max = lo - _MODEL_MARGIN[0], hi + _MODEL_MARGIN[1]
    n_pix = int(np.ceil(np.log(model_max / model_min) / instrument.pixel_dlnl))
    step = instrument.pixel_dlnl / _FINE_PER_PIXEL
    ln_fine = np.log(model_min) + step * (np.arange(n_pix * _FINE_PER_PIXEL) + 0.5)
    lam_fine = np.exp(ln_fine)
    lam_pix = np.exp(ln_fine.reshape(n_pix, _FINE_PER_PIXEL).mean(axis=1))
    # Throughput falls steeply blueward of the edge; OH sky brightens the red.
    throughput = 1.0 / (1.0 + (instrument.blue_edge / lam_pix) ** 6)
    sky = 1.0 + instrument.sky_slope * np.clip((lam_pix - 7000.0) / 1500.0, 0.0, None)
    band_pix = (lam_pix >= lo) & (lam_pix <= hi)
    shape = sky / throughput
    return _Grids(ln_fine, lam_fine, (lam_fine >= lo) & (lam_fine <= hi), lam_pix, band_pix,
                  shape / np.median(shape[band_pix]))


def wavelength_grid(n_points: int = N_POINTS, instrument: Instrument = SEDM) -> np.ndarray:
    """The output wavelength grid in Angstrom: ``n_points`` linearly spaced over the instrument's range."""
    return np.linspace(*instrument.wave, n_points)


# --- Small physics helpers ------------------------------------------------------------------------
def _col(x: np.ndarray | float) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(-1, 1)


def _uniform(rng: np.random.Generator, bounds: tuple[float, float], n: int) -> np.ndarray:
    return rng.uniform(bounds[0], bounds[1], n)


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float], n: int) -> np.ndarray:
    return np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]), n))


def _blackbody(lam: np.ndarray, temp: np.ndarray) -> np.ndarray:
    """Planck B_lambda (arbitrary units) for rows of wavelengths ``lam`` (A) at temperatures ``temp`` (K)."""
    x = _HC_OVER_K / (lam * _col(temp))
    return (5000.0 / lam) ** 5 / np.expm1(x)


def _ccm_transmission(lam: np.ndarray, ebv: np.ndarray, r_v: float = 3.1) -> np.ndarray:
    """Dust transmission from the Cardelli, Clayton & Mathis (1989) optical/NIR law."""
    # The optical polynomial holds for 1.1-3.3 inverse micron; held flat just blueward of 3030 A.
    y = np.clip(1.0e4 / lam, 1.1, 3.3) - 1.82
    a = 1 + y * (0.17699 + y * (-0.50447 + y * (-0.02427 + y * (0.72085 + y * (0.01979 + y * (-0.77530
        + y * 0.32999))))))
    b = y * (1.41338 + y * (2.28305 + y * (1.07233 + y * (-5.38434 + y * (-0.62251 + y * (5.30260
        + y * -2.09002))))))
    return 10.0 ** (-0.4 * (a + b / r_v) * r_v * _col(ebv))


def _gauss(u: np.ndarray, rest: float, offset: np.ndarray | float, sigma: np.ndarray | float) -> np.ndarray:
    """Unit-peak Gaussian in velocity; ``u`` is c * ln(rest-frame lambda), ``offset`` in km/s (red +)."""
    sigma = np.maximum(_col(sigma), _MIN_SIGMA_KMS)
    return np.exp(-0.5 * ((u - (_C_KMS * np.log(rest) + _col(offset))) / sigma) ** 2)


def _emission(u: np.ndarray, rest: float, ew: np.ndarray | float, fwhm: np.ndarray | float,
              offset: np.ndarray | float = 0.0) -> np.ndarray:
    """Gaussian line of rest equivalent width ``ew`` (A) as a fraction of the local continuum."""
    sigma = np.maximum(_col(fwhm) * _FWHM_TO_SIGMA, _MIN_SIGMA_KMS)
    return _col(ew) * _C_KMS / (rest * np.sqrt(2.0 * np.pi) * sigma) * _gauss(u, rest, offset, sigma)


def _lorentzian(u: np.ndarray, rest: float, ew: np.ndarray, fwhm: np.ndarray) -> np.ndarray:
    """Lorentzian line of rest equivalent width ``ew`` as a fraction of the local continuum."""
    gamma = 0.5 * _col(fwhm)
    v = u - _C_KMS * np.log(rest)
    return _col(ew) * _C_KMS / rest * (gamma / np.pi) / (v * v + gamma * gamma)


def _step(lam: np.ndarray, edge: float, soft: float) -> np.ndarray:
    """Smooth 0 -> 1 step at ``edge``; the argument is clipped so exp never overflows."""
    return 1.0 / (1.0 + np.exp(np.clip((edge - lam) / soft, -50.0, 50.0)))


def _unit_mean(flux: np.ndarray, band: np.ndarray) -> np.ndarray:
    return flux / flux[:, band].mean(axis=1, keepdims=True)


# --- Sources ---------------------------------------------------------------------------------------
def _supernova(name: str, u: np.ndarray, lam: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blackbody photosphere with UV blanketing and P-Cygni lines, evolving with phase."""
    n = u.shape[0]
    evo = _SN_EVOLUTION[name]
    start = max(PHASE_RANGE[0], 3.0 - evo.rise)   # no spectra within 3 days of explosion
    phase = start + (PHASE_RANGE[1] - start) * rng.beta(*_PHASE_SHAPE, n)
    age = phase + evo.rise
    v_ph = _uniform(rng, SN_VELOCITY_KMS[name], n) * (age / evo.rise) ** -_VELOCITY_DECLINE
    t_peak = _uniform(rng, SN_TEMPERATURE_K[name], n)
    temp = np.clip(evo.t_floor + (t_peak - evo.t_floor) * np.exp(-phase / evo.cool_days), evo.t_floor, _SN_T_MAX)
    width = _uniform(rng, evo.width, n)
    edge = _uniform(rng, evo.blanket, n) + evo.blanket_growth * phase
    continuum = _blackbody(lam, temp) / (1.0 + (_col(edge) / lam) ** 8)

    depth = np.zeros_like(u)
    emission = np.zeros_like(u)
    for feat in _SN_FEATURES[name]:
        tau = np.minimum(_uniform(rng, feat.tau, n) * LINE_STRENGTH_SCALE * np.exp(feat.growth * phase / 30.0),
                         _TAU_MAX)
        peak = tau * _uniform(rng, feat.emission, n)
        v_line = v_ph * feat.velocity
        for rest, weight in zip(feat.rest, feat.weights):
            depth += _col(tau * weight) * _gauss(u, rest, -v_line, width * v_line)
            if feat.emission[1] > 0:
                emission += _col(peak * weight) * _gauss(u, rest, 0.0, _EMISSION_WIDTH * v_line)
    if name == "SN IIn":
        emission += _interaction(u, rng, n)
    return continuum * np.exp(-depth) * (1.0 + emission)


def _interaction(u: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """IIn circumstellar interaction: narrow Balmer cores on electron-scattering (Lorentzian) wings."""
    ha = _log_uniform(rng, IIN_HALPHA_EW, n)
    core_fwhm = _log_uniform(rng, IIN_NARROW_FWHM_KMS, n)
    wing_fwhm = _log_uniform(rng, IIN_WING_FWHM_KMS, n)
    core = rng.uniform(0.2, 0.6, n)
    hb = ha * rng.uniform(0.2, 0.45, n)
    lines = np.zeros_like(u)
    for rest, ew in ((_HA, ha), (_HB, hb), (_HG, hb * rng.uniform(0.4, 0.6, n))):
        lines += _emission(u, rest, ew * core, core_fwhm) + _lorentzian(u, rest, ew * (1 - core), wing_fwhm)
    return lines + _emission(u, _HE_I[1], ha * rng.uniform(0.0, 0.08, n), core_fwhm)


def _agn(u: np.ndarray, lam: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Power-law continuum with broad permitted and narrow forbidden lines (Vanden Berk et al. 2001)."""
    n = u.shape[0]
    continuum = (lam / 5100.0) ** _col(_uniform(rng, AGN_SLOPE_RANGE, n))
    broad = _log_uniform(rng, AGN_BROAD_FWHM_KMS, n)
    narrow = rng.uniform(300.0, 700.0, n)
    ha = _log_uniform(rng, (100.0, 500.0), n)
    hb = ha * rng.uniform(0.15, 0.3, n)
    hg = hb * rng.uniform(0.3, 0.5, n)
    o3 = _log_uniform(rng, (3.0, 50.0), n)
    ha_n = _log_uniform(rng, (2.0, 30.0), n)
    n2 = ha_n * rng.uniform(0.3, 1.5, n)   # AGN photoionisation raises [N II]/H-alpha
    lines = (
        _emission(u, _HA, ha, broad) + _emission(u, _HB, hb, broad) + _emission(u, _HG, hg, broad)
        + _emission(u, _HD, hg * 0.6, broad) + _emission(u, _HE_I[1], ha * rng.uniform(0.02, 0.06, n), broad)
        + _emission(u, _HE_II, rng.uniform(0.0, 5.0, n), broad)
        + _emission(u, 2798.0, _log_uniform(rng, (20.0, 60.0), n), broad)
        + _emission(u, 4570.0, _log_uniform(rng, (10.0, 60.0), n), 15000.0)   # optical Fe II bumps
        + _emission(u, 5250.0, _log_uniform(rng, (10.0, 60.0), n), 15000.0)
        + _emission(u, 5006.8, o3, narrow) + _emission(u, 4958.9, o3 / 2.98, narrow)
        + _emission(u, _HA, ha_n, narrow) + _emission(u, _HB, ha_n * 0.3, narrow)
        + _emission(u, 6583.5, n2, narrow) + _emission(u, 6548.0, n2 / 2.95, narrow)
        + _emission(u, 6716.4, ha_n * rng.uniform(0.2, 0.5, n), narrow)
        + _emission(u, 6730.8, ha_n * rng.uniform(0.2, 0.5, n), narrow)
        + _emission(u, 6300.3, ha_n * rng.uniform(0.05, 0.2, n), narrow)
        + _emission(u, 3727.4, _log_uniform(rng, (1.0, 15.0), n), narrow)
        + _emission(u, 3868.8, _log_uniform(rng, (0.5, 5.0), n), narrow)
    )
    return continuum * (1.0 + lines)


def _cataclysmic(u: np.ndarray, lam: np.ndarray, rng: np.random.Generator, band: np.ndarray) -> np.ndarray:
    """Accretion disk (hot blackbody or steep power law), M-dwarf secondary, double-peaked emission."""
    n = u.shape[0]
    outburst = rng.random(n) < CV_OUTBURST_FRACTION
    disk_bb = _unit_mean(_blackbody(lam, _uniform(rng, CV_TEMPERATURE_K, n)), band)
    disk_pl = _unit_mean((lam / 5500.0) ** _col(rng.uniform(-3.0, -2.0, n)), band)
    disk = np.where(_col(rng.random(n) < 0.5), disk_bb, disk_pl)
    secondary = np.where(outburst, 0.0, rng.uniform(0.0, 0.3, n))   # swamped by the disk in outburst
    continuum = (1 - _col(secondary)) * disk + _col(secondary) * _unit_mean(
        _blackbody(lam, rng.uniform(3000.0, 3800.0, n)), band)

    strength = np.where(outburst, rng.uniform(0.05, 0.3, n), 1.0)
    ha = _log_uniform(rng, (20.0, 150.0), n) * strength
    hb = ha * rng.uniform(0.5, 1.0, n)    # optically thick disk: flat Balmer decrement
    hg = hb * rng.uniform(0.5, 0.9, n)
    he1 = ha * rng.uniform(0.05, 0.25, n)
    magnetic = rng.random(n) < 0.3
    he2 = hb * np.where(magnetic, rng.uniform(0.5, 1.2, n), rng.uniform(0.0, 0.1, n))
    half_split = 0.5 * _uniform(rng, CV_PEAK_SEPARATION_KMS, n)
    peak_fwhm = rng.uniform(500.0, 1500.0, n)
    lines = np.zeros_like(u)
    for rest, ew in ((_HA, ha), (_HB, hb), (_HG, hg), (_HD, hg * 0.7), (_HE_I[0], he1 * 0.6),
                     (_HE_I[1], he1), (_HE_I[2], he1 * 0.45), (_HE_I[3], he1 * 0.5), (_HE_II, he2)):
        lines += (_emission(u, rest, 0.5 * ew, peak_fwhm, -half_split)
                  + _emission(u, rest, 0.5 * ew, peak_fwhm, half_split))
    # An outbursting disk is optically thick: broad Balmer absorption under the emission cores.
    absorption = np.zeros_like(u)
    abs_ew = np.where(outburst, rng.uniform(3.0, 12.0, n), 0.0)
    abs_fwhm = rng.uniform(2000.0, 4000.0, n)
    for rest in (_HA, _HB, _HG, _HD):
        absorption += _emission(u, rest, abs_ew, abs_fwhm)
    return continuum * np.exp(-absorption) * (1.0 + lines)


def _tde(u: np.ndarray, lam: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Hot blackbody with broad H and/or He II 4686 emission (TDE-H, TDE-H+He, TDE-He)."""
    n = u.shape[0]
    continuum = _blackbody(lam, _uniform(rng, TDE_TEMPERATURE_K, n))
    kind = rng.choice(3, size=n, p=TDE_SUBTYPE_FRACTIONS)
    fwhm = _log_uniform(rng, TDE_FWHM_KMS, n)
    ha = np.select([kind == 0, kind == 1], [_log_uniform(rng, (50.0, 300.0), n),
                                             _log_uniform(rng, (30.0, 200.0), n)], 0.0)
    he2 = np.select([kind == 1, kind == 2], [_log_uniform(rng, (30.0, 200.0), n),
                                             _log_uniform(rng, (50.0, 250.0), n)], 0.0)
    hb = ha * rng.uniform(0.1, 0.4, n)
    lines = (_emission(u, _HA, ha, fwhm) + _emission(u, _HB, hb, fwhm) + _emission(u, _HG, hb * 0.4, fwhm)
             + _emission(u, _HE_II, he2, fwhm))
    return continuum * (1.0 + lines)


def _host(name: str, u: np.ndarray, lam: np.ndarray, rng: np.random.Generator, band: np.ndarray) -> np.ndarray:
    """Host galaxy light: old population + young (A-star) population + nebular emission; mean 1."""
    n = u.shape[0]
    young_range, nebular_scale = _HOST_KIND[name]
    young = _uniform(rng, young_range, n)

    d4000 = rng.uniform(1.2, 1.8, n)
    old_depth = np.zeros_like(u)
    scatter = rng.uniform(0.7, 1.3, n)   # age / metallicity spread in line strengths
    for rest, ew, fwhm in _OLD_ABSORPTION:
        old_depth += _emission(u, rest, ew * scatter, fwhm)
    old = (_blackbody(lam, rng.uniform(4000.0, 5200.0, n))
           * (1 / _col(d4000) + (1 - 1 / _col(d4000)) * _step(lam, 4000.0, 40.0)) * np.exp(-old_depth))

    young_depth = np.zeros_like(u)
    for rest, ew, fwhm in _YOUNG_ABSORPTION:
        young_depth += _emission(u, rest, ew, fwhm)
    balmer_jump = 0.5 + 0.5 * _step(lam, 3646.0, 20.0)
    young_light = _blackbody(lam, rng.uniform(9000.0, 16000.0, n)) * balmer_jump * np.exp(-young_depth)

    stars = (1 - _col(young)) * _unit_mean(old, band) + _col(young) * _unit_mean(young_light, band)
    ha = nebular_scale * young * _log_uniform(rng, (5.0, 80.0), n)
    nebular = _emission(u, _HA, ha, 250.0)
    for rest, ratio in _NEBULAR:
        nebular += _emission(u, rest, ha * _uniform(rng, ratio, n), 250.0)
    return _unit_mean(stars * (1.0 + nebular), band)


_SOURCES: dict[str, Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]] = {
    "AGN": _agn, "TDE": _tde,
}


def _source(name: str, n: int, rng: np.random.Generator, grids: _Grids) -> np.ndarray:
    """Redshifted, reddened source plus host light on the observed-frame fine grid (mean 1)."""
    lo, hi = REDSHIFT_RANGE[name]
    z = _log_uniform(rng, (lo, hi), n) if hi > 0 else np.zeros(n)
    ln_rest = grids.ln_fine[None, :] - np.log1p(z)[:, None]
    u, lam = _C_KMS * ln_rest, np.exp(ln_rest)
    if name == "Cataclysmic":   # Galactic: no host galaxy, only Milky Way dust (applied later)
        return _unit_mean(_cataclysmic(u, lam, rng, grids.band_fine), grids.band_fine)
    model = _SOURCES[name](u, lam, rng) if name in _SOURCES else _supernova(name, u, lam, rng)
    ebv = np.minimum(rng.exponential(HOST_EBV_MEAN, n), 1.0)
    model = _unit_mean(model * _ccm_transmission(lam, ebv), grids.band_fine)
    host_frac = _col(_uniform(rng, HOST_FRACTION[name], n))
    return (1 - host_frac) * model + host_frac * _host(name, u, lam, rng, grids.band_fine)


def _observe(flux: np.ndarray, rng: np.random.Generator, instrument: Instrument) -> np.ndarray:
    """Atmosphere, calibration tilt, the instrument's line-spread function, pixelisation and noise."""
    grids = _grids(instrument)
    n, m = flux.shape
    lam = grids.lam_fine

    transmission = _ccm_transmission(lam, _uniform(rng, MW_EBV_RANGE, n))
    for band, windows in _TELLURIC_WINDOWS.items():
        depth = _col(_uniform(rng, TELLURIC_DEPTH[band], n))
        for lo, hi, soft in windows:
            transmission = transmission * (1 - depth * _step(lam, lo, soft) * (1 - _step(lam, hi, soft)))
    tilt = np.clip(rng.normal(0.0, FLUX_TILT_SIGMA, n), -3 * FLUX_TILT_SIGMA, 3 * FLUX_TILT_SIGMA)
    flux = flux * transmission * (lam / 6000.0) ** _col(tilt)

    # Constant FWHM = lambda / R is a fixed Gaussian in ln(lambda): convolve by FFT, each row with its R.
    resolution = _uniform(rng, instrument.resolution, n)
    pad = 8 * _FINE_PER_PIXEL
    n_fft = 1 << int(np.ceil(np.log2(m + 2 * pad)))
    spectrum = np.fft.rfft(np.pad(flux, ((0, 0), (pad, pad)), mode="edge"), n=n_fft)
    freq = np.fft.rfftfreq(n_fft, d=instrument.pixel_dlnl / _FINE_PER_PIXEL)
    sigma_ln = _col(_FWHM_TO_SIGMA / resolution)
    smooth = np.fft.irfft(spectrum * np.exp(-2.0 * (np.pi * sigma_ln * freq) ** 2), n=n_fft)[:, pad:pad + m]
    pixels = smooth.reshape(n, -1, _FINE_PER_PIXEL).mean(axis=2)

    # Noise: S/N defined at the median flux; variance splits into source (q) and sky/read (1 - q) terms.
    ref = np.median(pixels[:, grids.band_pix], axis=1, keepdims=True)
    snr = _col(_log_uniform(rng, instrument.snr, n))
    q = _col(rng.uniform(0.3, 0.9, n))
    variance = (q * np.clip(pixels / ref, 0.05, None) + (1 - q)) * grids.noise_shape
    sigma = ref / snr * np.sqrt(variance)
    noisy = pixels + sigma * np.clip(rng.standard_normal(pixels.shape), -4.0, 4.0)
    for line in _SKY_LINES:   # imperfect sky subtraction leaves residuals at the bright night-sky lines
        sigma_line = line * _FWHM_TO_SIGMA / _col(resolution)
        profile = np.exp(-0.5 * ((grids.lam_pix - line) / sigma_line) ** 2)
        noisy += _col(rng.normal(0.0, _SKY_RESIDUAL, n)) * sigma * profile
    return noisy


def _interpolator(n_points: int, instrument: Instrument) -> tuple[np.ndarray, np.ndarray]:
    """Left indices and weights that linearly interpolate detector pixels onto the output grid."""
    x = _grids(instrument).lam_pix
    out = wavelength_grid(n_points, instrument)
    left = np.clip(np.searchsorted(x, out) - 1, 0, x.size - 2)
    return left, (out - x[left]) / (x[left + 1] - x[left])


def generate_split(n_per_class: int, rng: np.random.Generator, n_points: int = N_POINTS,
                   instrument: Instrument = SEDM) -> tuple[np.ndarray, list[str]]:
    """(flux float32 of shape (9*n_per_class, n_points), labels as class-name strings), shuffled.

    Each spectrum is observed with ``instrument``, interpolated onto ``wavelength_grid(n_points,
    instrument)`` and divided by its median there.
    """
    if n_per_class < 1 or n_points < 2:
        raise ValueError(f"need n_per_class >= 1 and n_points >= 2, got {n_per_class} and {n_points}")
    left, weight = _interpolator(n_points, instrument)
    grids = _grids(instrument)
    fluxes, labels = [], []
    for name in CLASS_ORDER:
        pixels = _observe(_source(name, n_per_class, rng, grids), rng, instrument)
        flux = pixels[:, left] * (1 - weight) + pixels[:, left + 1] * weight
        # The median is positive for any S/N >= 1 with clipped noise; the floor only guards degenerate draws.
        scale = np.maximum(np.median(flux, axis=1), 0.1 * np.mean(np.abs(flux), axis=1))
        fluxes.append(flux / scale[:, None])
        labels += [name] * n_per_class
    order = rng.permutation(len(labels))
    return np.concatenate(fluxes)[order].astype(np.float32), [labels[i] for i in order]


def write_synthetic(out_dir: str | Path, seed: int = 0, n_train: int = 560, n_val: int = 120,
                    n_test: int = 120, n_points: int = N_POINTS, instrument: Instrument = SEDM) -> dict[str, Path]:
    """Write train.pt/val.pt/test.pt with torch.save; return {'train': path, 'val': path, 'test': path}.

    Each file holds a dict {'flux': float32 tensor (N, 1, n_points), 'labels': list[str]}.
    ``n_train``/``n_val``/``n_test`` are spectra per class. The splits come from independent child
    generators of ``np.random.default_rng(seed)``, so a seed always gives byte-identical files. All
    three are generated before any is written, and each lands via a temporary file and
    ``os.replace``, so the folder never holds a half-written set.
    """
    import torch

    splits = {"train": n_train, "val": n_val, "test": n_test}
    payloads = {}
    for (split, n), rng in zip(splits.items(), np.random.default_rng(seed).spawn(len(splits))):
        flux, labels = generate_split(n, rng, n_points, instrument)
        payloads[split] = {"flux": torch.from_numpy(flux).unsqueeze(1), "labels": labels}
    return write_torch_splits(Path(out_dir), payloads)
