/*
 * FashionGen's noise stream in the browser: the same numbers as fashiongen.gan.sampling.noise (Python).
 *
 * Row i of noise(n, zDim, seed) holds the 64-bit words i*zDim .. (i+1)*zDim - 1 of numpy's Philox-4x64
 * (Salmon et al. 2011, 10 rounds) keyed by numpy.random.SeedSequence(seed); each word's top 53 bits are a
 * uniform u in (0, 1), and the value is the inverse normal CDF of u (Cephes ndtri, the algorithm of
 * torch.special.ndtri), in float64, then rounded to float32. Truncation (fashiongen.analysis.truncation)
 * maps z to ndtri(1/2 + psi (ndtr(z) - 1/2)).
 *
 * Works in a browser (a classic script: it defines window.FashionGenNoise) and in Node (module.exports).
 */
(function (root) {
  "use strict";

  // ---- numpy.random.SeedSequence (numpy/random/bit_generator.pyx), uint32 arithmetic ----
  const INIT_A = 0x43b0d7e5, MULT_A = 0x931e8875, INIT_B = 0x8b51f9dd, MULT_B = 0x58f38ded;
  const MIX_MULT_L = 0xca01f9dd, MIX_MULT_R = 0x4973f715, POOL_SIZE = 4;

  function seedWords(seed) {
    let n = BigInt(seed);
    if (n < 0n) throw new RangeError("seed must be >= 0");
    const words = [];
    if (n === 0n) words.push(0);
    while (n > 0n) { words.push(Number(n & 0xffffffffn)); n >>= 32n; }
    return words;
  }

  function seedSequencePool(seed) {
    const entropy = seedWords(seed);
    let hashConst = INIT_A;
    const hashmix = (value) => {
      value = (value ^ hashConst) >>> 0;
      hashConst = Math.imul(hashConst, MULT_A) >>> 0;
      value = Math.imul(value, hashConst) >>> 0;
      return (value ^ (value >>> 16)) >>> 0;
    };
    const mix = (x, y) => {
      const result = (Math.imul(MIX_MULT_L, x) - Math.imul(MIX_MULT_R, y)) >>> 0;
      return (result ^ (result >>> 16)) >>> 0;
    };
    const pool = new Array(POOL_SIZE);
    for (let i = 0; i < POOL_SIZE; i++) pool[i] = hashmix(i < entropy.length ? entropy[i] : 0);
    for (let src = 0; src < POOL_SIZE; src++) {
      for (let dst = 0; dst < POOL_SIZE; dst++) {
        if (src !== dst) pool[dst] = mix(pool[dst], hashmix(pool[src]));
      }
    }
    for (let src = POOL_SIZE; src < entropy.length; src++) {
      for (let dst = 0; dst < POOL_SIZE; dst++) pool[dst] = mix(pool[dst], hashmix(entropy[src]));
    }
    return pool;
  }

  /** SeedSequence(seed).generate_state(count, uint64) as BigInts. */
  function generateState64(seed, count) {
    const pool = seedSequencePool(seed);
    let hashConst = INIT_B;
    const words = [];
    for (let i = 0; i < 2 * count; i++) {
      let value = (pool[i % POOL_SIZE] ^ hashConst) >>> 0;
      hashConst = Math.imul(hashConst, MULT_B) >>> 0;
      value = Math.imul(value, hashConst) >>> 0;
      words.push((value ^ (value >>> 16)) >>> 0);
    }
    const state = [];
    for (let i = 0; i < count; i++) state.push(BigInt(words[2 * i]) | (BigInt(words[2 * i + 1]) << 32n));
    return state;
  }

  // ---- Philox-4x64-10 (Random123), as numpy.random.Philox draws it ----
  const M64 = 0xffffffffffffffffn;
  const PHILOX_M0 = 0xD2E7470EE14C6C93n, PHILOX_M1 = 0xCA5A826395121157n;
  const PHILOX_W0 = 0x9E3779B97F4A7C15n, PHILOX_W1 = 0xBB67AE8584CAA73Bn;

  function philoxBlock(counter, key) {
    let [c0, c1, c2, c3] = counter;
    let [k0, k1] = key;
    for (let round = 0; round < 10; round++) {
      if (round > 0) { k0 = (k0 + PHILOX_W0) & M64; k1 = (k1 + PHILOX_W1) & M64; }
      const p0 = PHILOX_M0 * c0, p1 = PHILOX_M1 * c2;
      const hi0 = p0 >> 64n, lo0 = p0 & M64, hi1 = p1 >> 64n, lo1 = p1 & M64;
      [c0, c1, c2, c3] = [hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0];
    }
    return [c0, c1, c2, c3];
  }

  /** The first `count` 64-bit words (BigInt) of numpy.random.Philox(SeedSequence(seed)).random_raw(). */
  function philoxWords(seed, count) {
    const key = generateState64(seed, 2);
    const words = new Array(count);
    const counter = [0n, 0n, 0n, 0n];
    for (let i = 0; i < count; i += 4) {
      counter[0] = (counter[0] + 1n) & M64;  // numpy increments before each block (the counter is < 2^62 here)
      const block = philoxBlock(counter, key);
      for (let j = 0; j < 4 && i + j < count; j++) words[i + j] = block[j];
    }
    return words;
  }

  // ---- Cephes ndtri / ndtr (double precision) ----
  const P0 = [-5.99633501014107895267e1, 9.80010754185999661536e1, -5.66762857469070293439e1,
    1.39312609387279679503e1, -1.23916583867381258016e0];
  const Q0 = [1.95448858338141759834e0, 4.67627912898881538453e0, 8.63602421390890590575e1,
    -2.25462687854119370527e2, 2.00260212380060660359e2, -8.20372256168333339912e1,
    1.59056225126211695515e1, -1.18331621121330003142e0];
  const P1 = [4.05544892305962419923e0, 3.15251094599893866154e1, 5.71628192246421288162e1,
    4.40805073893200834700e1, 1.46849561928858024014e1, 2.18663306850790267539e0,
    -1.40256079171354495875e-1, -3.50424626827848203418e-2, -8.57456785154685413611e-4];
  const Q1 = [1.57799883256466749731e1, 4.53907635128879210584e1, 4.13172038254672030440e1,
    1.50425385692907503408e1, 2.50464946208309415979e0, -1.42182922854787788574e-1,
    -3.80806407691578277194e-2, -9.33259480895457427372e-4];
  const P2 = [3.23774891776946035970e0, 6.91522889068984211695e0, 3.93881025292474443415e0,
    1.33303460815807542389e0, 2.01485389549179081538e-1, 1.23716634817820021358e-2,
    3.01581553508235416007e-4, 2.65806974686737550832e-6, 6.23974539184983293730e-9];
  const Q2 = [6.02427039364742014255e0, 3.67983563856160859403e0, 1.37702099489081330271e0,
    2.16236993594496635890e-1, 1.34204006088543189037e-2, 3.28014464682127739104e-4,
    2.89247864745380683936e-6, 6.79019408009981274425e-9];
  const S2PI = 2.50662827463100050242e0;

  const polevl = (x, c) => c.reduce((acc, coef) => acc * x + coef, 0);
  const p1evl = (x, c) => c.reduce((acc, coef) => acc * x + coef, 1);

  /** The inverse of the standard normal CDF (Cephes ndtri): y in (0, 1) -> x with Phi(x) = y. */
  function ndtri(y0) {
    if (y0 <= 0) return -Infinity;
    if (y0 >= 1) return Infinity;
    let code = true, y = y0;
    if (y > 1.0 - 0.13533528323661269189) { y = 1.0 - y; code = false; }
    if (y > 0.13533528323661269189) {
      y -= 0.5;
      const y2 = y * y;
      const x = y + y * (y2 * polevl(y2, P0) / p1evl(y2, Q0));
      return x * S2PI;
    }
    const x = Math.sqrt(-2.0 * Math.log(y));
    const x0 = x - Math.log(x) / x;
    const z = 1.0 / x;
    const x1 = x < 8.0 ? z * polevl(z, P1) / p1evl(z, Q1) : z * polevl(z, P2) / p1evl(z, Q2);
    const result = x0 - x1;
    return code ? -result : result;
  }

  // erf / erfc (Cephes ndtr.c)
  const T = [9.60497373987051638749e0, 9.00260197203842689217e1, 2.23200534594684319226e3,
    7.00332514112805075473e3, 5.55923013010394962768e4];
  const U = [3.35617141647503099647e1, 5.21357949780152679795e2, 4.59432382970980127987e3,
    2.26290000613890934246e4, 4.92673942608635921086e4];
  const EP = [2.46196981473530512524e-10, 5.64189564831068821977e-1, 7.46321056442269912687e0,
    4.86371970985681366614e1, 1.96520832956077098242e2, 5.26445194995477358631e2,
    9.34528527171957607540e2, 1.02755188689515710272e3, 5.57535335369399327526e2];
  const EQ = [1.32281951154744992508e1, 8.67072140885989742329e1, 3.54937778887819891062e2,
    9.75708501743205489753e2, 1.82390916687909736289e3, 2.24633760818710981792e3,
    1.65666309194161350182e3, 5.57535340817727675546e2];
  const ER = [5.64189583547755073984e-1, 1.27536670759978104416e0, 5.01905042251180477414e0,
    6.16021097993053585195e0, 7.40974269950448939160e0, 2.97886665372100240670e0];
  const ES = [2.26052863220117276590e0, 9.39603524938001434673e0, 1.20489539808096656605e1,
    1.70814450747565897222e1, 9.60896809063285878198e0, 3.36907645100081516050e0];

  function erf(x) {
    if (Math.abs(x) > 1.0) return 1.0 - erfc(x);
    const z = x * x;
    return x * polevl(z, T) / p1evl(z, U);
  }

  function erfc(a) {
    const x = Math.abs(a);
    if (x < 1.0) return 1.0 - erf(a);
    const z = -a * a;
    if (z < -709.78) return a < 0 ? 2.0 : 0.0;
    const ez = Math.exp(z);
    const y = x < 8.0 ? ez * polevl(x, EP) / p1evl(x, EQ) : ez * polevl(x, ER) / p1evl(x, ES);
    return a < 0 ? 2.0 - y : y;
  }

  /** The standard normal CDF Phi(a) (Cephes ndtr). */
  function ndtr(a) {
    const x = a * Math.SQRT1_2;
    const z = Math.abs(x);
    if (z < Math.SQRT1_2) return 0.5 + 0.5 * erf(x);
    const y = 0.5 * erfc(z);
    return x > 0 ? 1.0 - y : y;
  }

  const UNIT = 2 ** -53;

  /** n x zDim standard-normal noise (a Float32Array, row-major) for `seed`: fashiongen.gan.sampling.noise. */
  function noise(n, zDim, seed) {
    const words = philoxWords(seed, n * zDim);
    const out = new Float32Array(n * zDim);
    for (let i = 0; i < out.length; i++) out[i] = ndtri((Number(words[i] >> 11n) + 0.5) * UNIT);
    return out;
  }

  /** Truncated-normal noise (fashiongen.analysis.truncation.truncate): psi in (0, 1], 1 = unchanged. */
  function truncate(z, psi) {
    if (!(psi > 0 && psi <= 1)) throw new RangeError("truncation psi must lie in (0, 1]");
    if (psi === 1) return z;
    const out = new Float32Array(z.length);
    for (let i = 0; i < z.length; i++) out[i] = ndtri(0.5 + psi * (ndtr(z[i]) - 0.5));
    return out;
  }

  const api = { noise, truncate, ndtri, ndtr, philoxWords, generateState64 };
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  else root.FashionGenNoise = api;
})(typeof self !== "undefined" ? self : this);
