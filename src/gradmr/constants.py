"""Physical constants used throughout gradmr (SI units).

Only one gyromagnetic ratio exists in the project; every module imports it from here.
"""

#: Proton gyromagnetic ratio divided by 2π, in Hz/T.
#: CODATA 2018 recommended value γ_p/2π = 42.577 478 518 MHz/T
#: (Tiesinga et al., Rev. Mod. Phys. 93, 025010, 2021).
GAMMA_BAR_HZ_PER_T: float = 42.577478518e6

#: Vacuum magnetic permeability μ0 in N/A² (T·m/A), CODATA 2018: 1.256 637 062 12 × 10⁻⁶
#: (no longer exactly 4π × 10⁻⁷ since the 2019 SI redefinition).
MU0_T_M_PER_A: float = 1.25663706212e-6
