//! e^x from basic arithmetic alone, for Exp, Sigmoid (Keras' swish) and Softplus.
//!
//! The system's `expf` is a call per element that no loop vectorizes (30% of EfficientNet-B0's
//! time went there), and its last bit may differ between C libraries, which folding must not
//! let into an artifact. This one uses only IEEE additions, multiplications and bit moves
//! (Rust never fuses them into FMAs), so it gives the same bits on every machine, and a loop
//! over it compiles to vector instructions.

/// e^x for float32: within 2 ulp of the exact value wherever the result is normal, correctly
/// infinite above 88.72 and zero below -103.97 (subnormal results in between), NaN for NaN.
#[inline]
pub fn exp_f32(x: f32) -> f32 {
    // Beyond these e^x is infinite, or zero, in float32.
    const MAX: f32 = 88.722_84;
    const MIN: f32 = -103.972_08;
    // ln 2 in two parts; the first has few significant bits, so n * LN2_HI is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5 * 2^23 rounds a float below 2^22 in magnitude to an integer (to nearest, ties
    // to even), which then sits in the low bits of the sum.
    const ROUND: f32 = 12_582_912.0;
    // Cephes' minimax polynomial for (e^r - 1 - r) / r^2 on |r| <= ln(2) / 2.
    const P: [f32; 6] = [
        1.987_569_1e-4,
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ];
    let clamped = x.clamp(MIN, MAX);
    // x = n ln 2 + r, |r| <= ln(2) / 2, n in [-150, 128].
    let shifted = clamped * std::f32::consts::LOG2_E + ROUND;
    let n_float = shifted - ROUND;
    let n = shifted.to_bits() as i32 - ROUND.to_bits() as i32;
    let r = clamped - n_float * LN2_HI - n_float * LN2_LO;
    let mut poly = P[0];
    for c in &P[1..] {
        poly = poly * r + c;
    }
    let e_r = poly * (r * r) + r + 1.0;
    // 2^n as two normal factors, so that results between 2^-150 and 2^-126 come out right.
    let half = n >> 1;
    let scale_a = f32::from_bits(((half + 127) << 23) as u32);
    let scale_b = f32::from_bits(((n - half + 127) << 23) as u32);
    let y = e_r * scale_a * scale_b;
    if x > MAX {
        f32::INFINITY
    } else if x < MIN {
        0.0
    } else {
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between two finite positive floats.
    fn ulps(a: f32, b: f32) -> u32 {
        a.to_bits().abs_diff(b.to_bits())
    }

    #[test]
    fn within_two_ulp_of_the_exact_value_over_the_whole_range() {
        let mut worst = (0u32, 0.0f32);
        let mut x = -103.9f32;
        while x < 88.7 {
            let exact = (f64::from(x)).exp() as f32;
            let got = exp_f32(x);
            if exact >= f32::MIN_POSITIVE {
                let d = ulps(got, exact);
                if d > worst.0 {
                    worst = (d, x);
                }
            } else {
                // Subnormal results: within one subnormal step of the exact value.
                assert!((got - exact).abs() <= 2.0 * f32::from_bits(1), "x = {x}");
            }
            x += 0.000_37 * x.abs().max(0.01);
        }
        assert!(worst.0 <= 2, "{} ulp at x = {}", worst.0, worst.1);
    }

    #[test]
    fn edges() {
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(-0.0), 1.0);
        assert_eq!(exp_f32(1.0), std::f32::consts::E);
        assert_eq!(exp_f32(88.8), f32::INFINITY);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(-104.0), 0.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert!(exp_f32(f32::NAN).is_nan());
        // A NaN with its sign bit set, whose bits are a negative integer (overflow-checked in
        // the dev profile, which build scripts run in).
        assert!(exp_f32(-f32::NAN).is_nan());
        assert!(exp_f32(f32::from_bits(u32::MAX)).is_nan());
        assert!(exp_f32(88.72).is_finite());
        assert!(exp_f32(-103.9) > 0.0);
    }

    /// The same bits everywhere: a few values pinned to the correctly rounded e^x (from
    /// float64 exp), which this code gives for them.
    #[test]
    fn pinned_bits() {
        let pinned = [
            (0.5f32, 0x3fd3_094c_u32),
            (-3.25, 0x3d1e_d1b4),
            (20.0, 0x4de7_5844),
            (-50.0, 0x1b69_2beb),
            (1e-3, 0x3f80_20c9),
        ];
        for (x, bits) in pinned {
            assert_eq!(exp_f32(x).to_bits(), bits, "x = {x}: {}", exp_f32(x));
        }
    }
}
