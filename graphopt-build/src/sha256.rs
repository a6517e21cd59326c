//! SHA-256 that stays fast in a build script, which runs unoptimized: at opt-level 0, sha2's
//! intrinsics and portable code hash about 20 MB/s, so a 100 MB model cost seconds per hash.
//! On x86_64 (outside MSVC), blocks go to the assembly compression function of `sha2-asm`
//! (about 190 MB/s unoptimized, measured); the padding is FIPS 180-4's. Optimized (an app's
//! `[profile.dev.build-override]`, or a release build, which graphopt-build's build script
//! tells apart by `OPT_LEVEL`) and elsewhere, `sha2`, which uses the CPU's SHA extensions
//! where it has them: about 1 GB/s against sha2-asm's 150-200 MB/s on this machine.

#[cfg(all(
    target_arch = "x86_64",
    not(target_env = "msvc"),
    not(graphopt_build_optimized)
))]
mod imp {
    const INITIAL: [u32; 8] = [
        0x6a09_e667,
        0xbb67_ae85,
        0x3c6e_f372,
        0xa54f_f53a,
        0x510e_527f,
        0x9b05_688c,
        0x1f83_d9ab,
        0x5be0_cd19,
    ];

    /// Compresses one 64-byte block (the callers' chunks are exactly that long).
    fn compress(state: &mut [u32; 8], block: &[u8]) {
        if let Ok(block) = <&[u8; 64]>::try_from(block) {
            sha2_asm::compress256(state, std::slice::from_ref(block));
        }
    }

    #[cfg(test)]
    pub const BACKEND: &str = "sha2-asm";

    /// A streaming SHA-256.
    pub struct Hasher {
        state: [u32; 8],
        /// Bytes of an incomplete block.
        pending: Vec<u8>,
        /// Bytes hashed so far.
        length: u64,
    }

    impl Default for Hasher {
        fn default() -> Self {
            Hasher {
                state: INITIAL,
                pending: Vec::with_capacity(64),
                length: 0,
            }
        }
    }

    impl Hasher {
        pub fn update(&mut self, mut bytes: &[u8]) {
            self.length = self.length.wrapping_add(bytes.len() as u64);
            if !self.pending.is_empty() {
                let take = (64 - self.pending.len()).min(bytes.len());
                self.pending.extend_from_slice(&bytes[..take]);
                bytes = &bytes[take..];
                if self.pending.len() < 64 {
                    return;
                }
                compress(&mut self.state, &self.pending);
                self.pending.clear();
            }
            let blocks = bytes.chunks_exact(64);
            let rest = blocks.remainder();
            for block in blocks {
                compress(&mut self.state, block);
            }
            self.pending.extend_from_slice(rest);
        }

        pub fn finalize(mut self) -> [u8; 32] {
            let bits = self.length.wrapping_mul(8);
            // A 1 bit, zeros up to 56 bytes into a block, the message length in bits.
            let mut tail = std::mem::take(&mut self.pending);
            tail.push(0x80);
            while tail.len() % 64 != 56 {
                tail.push(0);
            }
            tail.extend_from_slice(&bits.to_be_bytes());
            for block in tail.chunks_exact(64) {
                compress(&mut self.state, block);
            }
            let mut digest = [0u8; 32];
            for (out, word) in digest.chunks_exact_mut(4).zip(self.state) {
                out.copy_from_slice(&word.to_be_bytes());
            }
            digest
        }
    }
}

#[cfg(not(all(
    target_arch = "x86_64",
    not(target_env = "msvc"),
    not(graphopt_build_optimized)
)))]
mod imp {
    use sha2::Digest as _;

    #[cfg(test)]
    pub const BACKEND: &str = "sha2";

    /// A streaming SHA-256.
    #[derive(Default)]
    pub struct Hasher(sha2::Sha256);

    impl Hasher {
        pub fn update(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }

        pub fn finalize(self) -> [u8; 32] {
            self.0.finalize().into()
        }
    }
}

pub use imp::Hasher;

/// SHA-256 of `bytes`.
pub fn digest(bytes: &[u8]) -> [u8; 32] {
    let mut hasher = Hasher::default();
    hasher.update(bytes);
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use sha2::Digest as _;

    use super::*;

    #[test]
    fn matches_sha2_for_every_padding_case_and_any_split() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 31 % 251) as u8).collect();
        for len in [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000, 5000] {
            let bytes = &data[..len];
            let expected: [u8; 32] = sha2::Sha256::digest(bytes).into();
            assert_eq!(digest(bytes), expected, "length {len}");
            for split in [1, 7, 63, 64, 100] {
                let mut hasher = Hasher::default();
                for piece in bytes.chunks(split) {
                    hasher.update(piece);
                }
                assert_eq!(
                    hasher.finalize(),
                    expected,
                    "length {len} in pieces of {split}"
                );
            }
        }
    }

    /// The README's figures for hashing in a build script: run in the dev profile, as build
    /// scripts are, with `cargo test -p graphopt-build --lib -- --ignored --nocapture
    /// hashing_speed` (add `--release` for a build-override's optimized build). Prints MB/s;
    /// a measurement, not a check.
    #[test]
    #[ignore = "a measurement: run it on purpose"]
    fn hashing_speed() {
        let data = vec![0x5au8; 64 << 20];
        let rate = |hash: &dyn Fn(&[u8]) -> [u8; 32]| {
            let start = std::time::Instant::now();
            let out = hash(&data);
            let seconds = start.elapsed().as_secs_f64();
            (data.len() as f64 / 1e6 / seconds, out)
        };
        let (ours, a) = rate(&digest);
        let (portable, b) = rate(&|bytes| sha2::Sha256::digest(bytes).into());
        assert_eq!(a, b);
        println!(
            "graphopt-build's digest ({}): {ours:.0} MB/s; sha2: {portable:.0} MB/s",
            imp::BACKEND
        );
    }
}
