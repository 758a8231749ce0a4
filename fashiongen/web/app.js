/*
 * The FashionGen web page: runs the exported generator with onnxruntime-web (WebAssembly, one thread).
 *
 * window.FASHIONGEN_MODEL (model.js) holds the ONNX graph (base64) and the metadata written by
 * fashiongen/web_export.py: condition kind, classes, shapes, each class's condition row (label models) or a
 * bank of example encodings (encoding models), scores and provenance. The graph takes z (float32 B x z_dim)
 * and, for conditional models, code (float32 B x width); it returns images (float32 B x C x H x W in [-1, 1]).
 *
 * Image i of a grid for seed S is image i of `fashiongen generate --seed S --n N [--label L] [--truncation PSI]`
 * (noise.js draws the CLI's noise bit for bit). For tests and benchmarks the page keeps its last grid and walk
 * (window.fashiongenPage.grid / .strip: uint8 N x C x H x W, as the CLI's to_uint8 rounds) and the time from
 * each click or change to the drawn canvas (window.fashiongenPage.timings), and sets body[data-status] to
 * loading | ready | drawing | error (the message shown in the section where the person acted).
 */
(function () {
  "use strict";

  const model = window.FASHIONGEN_MODEL;
  const Noise = window.FashionGenNoise;
  const $ = (id) => document.getElementById(id);
  const page = { grid: null, strip: null, latents: [], timings: [], draws: 0, ready: null };
  window.fashiongenPage = page;
  const SEED_MAX = (1n << 64n) - 1n;
  const PADDING = 2;  // px between and around tiles, as the CLI's grids
  const COLUMNS = 8;  // images per grid row, as the CLI's default --nrow
  let session = null;

  // ---------- helpers ----------
  function base64Bytes(text) {
    if (Uint8Array.fromBase64) return Uint8Array.fromBase64(text);
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  /** Show `message` in the section where the person acted (`where`: an element id), or at the top. */
  function showError(message, where = "error") {
    $(where).textContent = message;
    $(where).hidden = false;
    document.body.dataset.status = "error";
  }

  function clearError(where) {
    $(where).hidden = true;
    $(where).textContent = "";
  }

  function parseSeed(text, what) {
    const clean = String(text).trim();
    if (!/^\d+$/.test(clean) || BigInt(clean) > SEED_MAX) {
      throw new Error(`${what} must be a whole number from 0 to 2^64-1 (${SEED_MAX}), got "${clean}".`);
    }
    return BigInt(clean);
  }

  /** float32 in [-1, 1] -> uint8 exactly as fashiongen.images.to_uint8: (x + 1) * 127.5 in float32, round half to even. */
  function toUint8(values) {
    const out = new Uint8Array(values.length);
    for (let i = 0; i < values.length; i++) {
      const v = Math.fround(Math.fround(values[i] + 1) * 127.5);
      let r = Math.round(v);
      if (r - v === 0.5 && r % 2 !== 0) r -= 1;  // a tie rounds to even
      out[i] = Math.min(255, Math.max(0, r));
    }
    return out;
  }

  // ---------- inputs of the graph ----------
  function codeRows(indices) {  // class indices (label) or bank indices (encoding) -> Float32Array rows
    if (model.condition_input === "none") return new Float32Array(0);
    const rows = model.condition_input === "class" ? model.class_rows : model.bank.map((b) => b.code);
    const out = new Float32Array(indices.length * model.code_width);
    indices.forEach((index, i) => out.set(rows[index], i * model.code_width));
    return out;
  }

  async function run(z, code, n) {
    const feeds = { z: new ort.Tensor("float32", z, [n, model.z_dim]) };
    if (model.inputs.includes("code")) feeds.code = new ort.Tensor("float32", code, [n, model.code_width]);
    const result = await session.run(feeds);
    return toUint8(result.images.data);
  }

  // ---------- drawing ----------
  function scale() { return Math.max(1, Math.floor(96 / model.image_size)); }

  function paint(canvas, images, n, columns) {
    const size = model.image_size, channels = model.channels, s = scale();
    const rows = Math.ceil(n / columns);
    const tile = size * s;
    canvas.width = columns * (tile + PADDING) + PADDING;
    canvas.height = rows * (tile + PADDING) + PADDING;
    const context = canvas.getContext("2d");
    context.imageSmoothingEnabled = false;
    context.fillStyle = "#000";
    context.fillRect(0, 0, canvas.width, canvas.height);
    const pixels = new ImageData(size, size);
    const scratch = document.createElement("canvas");
    scratch.width = scratch.height = size;
    const scratchContext = scratch.getContext("2d");
    const plane = size * size;
    for (let i = 0; i < n; i++) {
      const base = i * channels * plane;
      for (let p = 0; p < plane; p++) {
        const r = images[base + p];
        pixels.data[4 * p] = r;
        pixels.data[4 * p + 1] = channels === 3 ? images[base + plane + p] : r;
        pixels.data[4 * p + 2] = channels === 3 ? images[base + 2 * plane + p] : r;
        pixels.data[4 * p + 3] = 255;
      }
      scratchContext.putImageData(pixels, 0, 0);
      const x = PADDING + (i % columns) * (tile + PADDING), y = PADDING + Math.floor(i / columns) * (tile + PADDING);
      context.drawImage(scratch, x, y, tile, tile);
    }
  }

  const painted = () => new Promise((resolve) => requestAnimationFrame(() => resolve(performance.now())));

  // One draw at a time (a session runs one request at a time). A request for what is being drawn already
  // (a seed's change event, then the click on Draw that caused it) is answered by that draw; any other request
  // made meanwhile is drawn once after it, with the inputs as they are then. A draw's time is measured from the
  // event that started it.
  function serialised(work, inputsOf, errorBox) {
    let busy = false, drawing = null, waiting = null;
    return async function request(startedAt) {
      const inputs = inputsOf();
      if (busy) {
        if (inputs !== drawing && waiting === null) waiting = startedAt;
        return;
      }
      busy = true;
      drawing = inputs;
      document.body.dataset.status = "drawing";
      try {
        await work(startedAt);
        clearError(errorBox);
      } catch (error) {
        showError(error.message, errorBox);
        console.warn(error);
      } finally {
        busy = false;
        if (document.body.dataset.status !== "error") document.body.dataset.status = "ready";
      }
      if (waiting !== null) {
        const next = waiting;
        waiting = null;
        if (inputsOf() !== drawing) request(next);
      }
    };
  }

  function gridConditions(n) {
    const choice = $("condition").value;
    if (model.condition_input === "class") {
      return choice === "" ? Array.from({ length: n }, (_, i) => i % model.classes.length) : Array(n).fill(Number(choice));
    }
    if (model.condition_input === "encoding") return Array(n).fill(Number(choice));
    return [];
  }

  const drawGrid = serialised(async (startedAt) => {
    const n = Number($("count").value), seed = parseSeed($("seed").value, "The seed"), psi = Number($("psi").value);
    const z = Noise.truncate(Noise.noise(n, model.z_dim, seed), psi);
    const images = await run(z, codeRows(gridConditions(n)), n);
    paint($("grid"), images, n, COLUMNS);
    page.grid = { n, seed: String(seed), psi, images };
    page.draws += 1;
    $("grid-command").textContent = gridCommand(n, seed, psi);
    const done = await painted();
    page.timings.push({ what: "grid", n, ms: done - startedAt });
  }, () => JSON.stringify([$("seed").value, $("psi").value, $("count").value, $("condition").value]), "grid-error");

  function gridCommand(n, seed, psi) {
    let command = `fashiongen generate --seed ${seed} --n ${n}`;
    const choice = $("condition").value;
    if (model.condition_input === "class" && choice !== "") command += ` --label ${JSON.stringify(model.classes[Number(choice)])}`;
    if (model.condition_input === "encoding") command += " --like PHOTO (the bank's photos are held-out test images)";
    if (psi !== 1) command += ` --truncation ${psi}`;
    return command + " --out grid.png";
  }

  // ---------- walks (fashiongen.analysis.interpolation: slerp on noise, straight line on condition rows) ----------
  function slerp(a, b, steps) {
    let dot = 0, na = 0, nb = 0;
    for (let i = 0; i < a.length; i++) { na += a[i] * a[i]; nb += b[i] * b[i]; }
    na = Math.sqrt(na); nb = Math.sqrt(nb);
    for (let i = 0; i < a.length; i++) dot += (a[i] / na) * (b[i] / nb);
    const omega = Math.acos(Math.min(1, Math.max(-1, dot)));
    if (Math.abs(Math.sin(omega)) < 1e-6) return lerp(a, b, steps);
    const out = new Float32Array(steps * a.length);
    for (let s = 0; s < steps; s++) {
      const t = s / (steps - 1), wa = Math.sin((1 - t) * omega), wb = Math.sin(t * omega);
      for (let i = 0; i < a.length; i++) out[s * a.length + i] = (wa * a[i] + wb * b[i]) / Math.sin(omega);
    }
    return out;
  }

  function lerp(a, b, steps) {
    const out = new Float32Array(steps * a.length);
    for (let s = 0; s < steps; s++) {
      const t = s / (steps - 1);
      for (let i = 0; i < a.length; i++) out[s * a.length + i] = s === 0 ? a[i] : s === steps - 1 ? b[i] : (1 - t) * a[i] + t * b[i];
    }
    return out;
  }

  function repeat(row, steps) {
    const out = new Float32Array(steps * row.length);
    for (let s = 0; s < steps; s++) out.set(row, s * row.length);
    return out;
  }

  function firstRow(seed, psi) { return Noise.truncate(Noise.noise(1, model.z_dim, seed), psi); }

  function walkInputs(mode, steps, psi) {
    if (mode === "seeds") {
      const a = firstRow(parseSeed($("walk-seed-a").value, "The first seed"), psi);
      const b = firstRow(parseSeed($("walk-seed-b").value, "The second seed"), psi);
      const at = model.condition_input === "none" ? [] : [Number($("walk-at").value)];
      return [slerp(a, b, steps), repeat(codeRows(at), steps)];
    }
    if (mode === "conditions") {
      const z = firstRow(parseSeed($("walk-seed").value, "The seed"), psi);
      const from = codeRows([Number($("walk-from").value)]), to = codeRows([Number($("walk-to").value)]);
      return [repeat(z, steps), lerp(from, to, steps)];
    }
    if (page.latents.length < 2) throw new Error("Load two latent files (Your photos, below) to walk from one photo to the other.");
    const a = page.latents[Number($("walk-latent-a").value)], b = page.latents[Number($("walk-latent-b").value)];
    return [slerp(a.z, b.z, steps), lerp(a.code, b.code, steps)];
  }

  /** What the walk shows, and the command that draws the same frames where there is one. */
  function walkCaption(mode, steps, psi) {
    const truncated = psi === 1 ? "" : ` Truncation ψ ${psi.toFixed(2)} (set under Samples) applies to the noise.`;
    if (mode === "conditions" && model.condition_input === "class") {
      const name = (id) => JSON.stringify(model.classes[Number($(id).value)]);
      return `Class to class at fixed noise.${truncated}` + (psi === 1 ? " The same frames: fashiongen interpolate --seed " +
        `${$("walk-seed").value.trim()} --label ${name("walk-from")} --to ${name("walk-to")} --n-steps ${steps} --out walk.png` : "");
    }
    if (mode === "conditions") return `Photo to photo (their encodings) at fixed noise.${truncated}`;
    if (mode === "latents") {
      return "Your two photos: slerp on their noise, a straight line on their condition." + (model.condition === "cluster"
        ? " A cluster model draws its cluster from the noise, so the cluster switches at one frame here; "
          + "fashiongen interpolate --from/--to moves the cluster's embedding gradually instead."
        : ` The same frames: fashiongen interpolate --from A.npz --to B.npz --n-steps ${steps} --out walk.png`);
    }
    const at = model.condition_input === "none" ? "" : ` at ${$("walk-at").selectedOptions[0].textContent}`;
    return `Image 0 of seed ${$("walk-seed-a").value.trim()} to image 0 of seed ${$("walk-seed-b").value.trim()}${at} ` +
      `(slerp on the noise).${truncated}`;
  }

  const drawWalk = serialised(async (startedAt) => {
    const steps = Math.round(Number($("frames").value));
    if (!(steps >= 2 && steps <= 16)) throw new Error("Frames must be a whole number from 2 to 16.");
    const mode = $("walk-mode").value, psi = Number($("psi").value);
    const [z, code] = walkInputs(mode, steps, psi);
    const images = await run(z, code, steps);
    paint($("strip"), images, steps, steps);
    $("walk-caption").textContent = walkCaption(mode, steps, psi);
    page.strip = { n: steps, mode, images };
    const done = await painted();
    page.timings.push({ what: "walk", n: steps, ms: done - startedAt });
  }, () => Symbol("walk"), "walk-error");  // every click draws

  // ---------- latent files (fashiongen project) ----------
  function scalar(arrays, name) {
    const entry = arrays[name];
    return typeof entry.data === "string" ? entry.data : entry.data[0];
  }

  /** A latent from a file's arrays, checked as `fashiongen generate --from` checks it (projection.load_latent). */
  function latentFromArrays(arrays, fileName) {
    const problem = (text) => { throw new Error(`${fileName}: ${text}`); };
    const fix = "; give a latent file written by `fashiongen project PHOTO --out DIR` (DIR/<photo>.npz).";
    const missing = ["z", "condition", "generator_sha256", "distance", "photo"].filter((key) => !arrays[key]);
    if (missing.length) problem(`not a latent file: it lacks ${missing.join(", ")}${fix}`);
    const text = (key) => arrays[key].dtype[1] === "U" && arrays[key].shape.length === 0;
    const { z, cond } = arrays;
    if (z.dtype !== "<f4" || z.shape.length !== 1 || arrays.distance.shape.length !== 0
        || !["condition", "generator_sha256", "photo"].every(text)) {
      problem(`a key has the wrong type or shape for a latent file${fix}`);
    }
    const condition = scalar(arrays, "condition");
    if (condition !== model.condition) {
      problem(`it was projected into a ${condition} model; this page's generator is a ${model.condition} model.`);
    }
    if (scalar(arrays, "generator_sha256") !== model.generator_sha256) {
      problem("it was projected into another generator file; run `fashiongen project` again with this model.");
    }
    if (z.data.length !== model.z_dim) problem(`its z has ${z.data.length} values; this generator takes ${model.z_dim}.`);
    let code = new Float32Array(0);
    if (model.condition_input === "none") {
      if (cond) problem("it holds a condition (cond), which this generator does not take.");
    } else if (!cond) {
      problem("it lacks the condition (cond) this generator takes.");
    } else if (model.condition_input === "class") {
      const index = cond.data[0];
      if (cond.dtype !== "<i8" || cond.shape.length !== 0 || !Number.isInteger(index) || index < 0
          || index >= model.classes.length) {
        problem(`its cond is not one class index (int64) in 0..${model.classes.length - 1}.`);
      }
      code = codeRows([index]);
    } else {
      if (cond.dtype !== "<f4" || cond.shape.length !== 1 || cond.data.length !== model.code_width) {
        problem(`its cond is not ${model.code_width} float32 values (an encoding).`);
      }
      code = Float32Array.from(cond.data);
    }
    return { name: scalar(arrays, "photo"), distance: scalar(arrays, "distance"), z: Float32Array.from(z.data), code };
  }

  async function readLatent(file) {
    try {
      return latentFromArrays(await FashionGenLatent.readNpz(await file.arrayBuffer()), file.name);
    } catch (error) {
      throw new Error(error.message.startsWith(`${file.name}:`) ? error.message : `${file.name}: ${error.message}`);
    }
  }

  async function loadLatents(files) {
    for (const file of files) {
      const latent = await readLatent(file);
      latent.image = await run(latent.z, latent.code, 1);
      const index = page.latents.push(latent) - 1;
      const figure = document.createElement("figure");
      const canvas = document.createElement("canvas");
      paint(canvas, latent.image, 1, 1);
      const caption = document.createElement("figcaption");
      caption.textContent = `reconstruction of ${latent.name} (distance ${Number(latent.distance).toFixed(3)})`;
      figure.append(canvas, caption);
      $("latent-list").append(figure);
      for (const id of ["walk-latent-a", "walk-latent-b"]) option($(id), String(index), `${index + 1}: ${latent.name}`);
    }
    if (page.latents.length >= 2) {
      $("walk-latent-a").value = String(page.latents.length - 2);
      $("walk-latent-b").value = String(page.latents.length - 1);
      $("walk-mode").value = "latents";
      showWalkFields();
    }
  }

  // ---------- the page ----------
  function describeModel() {
    const info = $("model-info");
    const add = (term, value) => {
      const dt = document.createElement("dt"), dd = document.createElement("dd");
      dt.textContent = term; dd.textContent = value;
      info.append(dt, dd);
    };
    const kinds = { label: "one class per image (label)", encoding: "variations of a photo (encoding)",
      cluster: "draws its own cluster from the noise (cluster)", none: "noise only (none)" };
    add("Condition", kinds[model.condition] || model.condition);
    if (model.classes.length) add(model.labelled ? "Classes" : "Clusters / classes", model.classes.join(", "));
    add("Images", `${model.image_size} × ${model.image_size} px, ${model.channels === 1 ? "grey" : "RGB"}`);
    const s = model.scores || {};
    const number = (value) => (typeof value === "number" ? value.toFixed(2) : "?");
    add("FID", typeof s.fid === "number" ? `${number(s.fid)} beside a real-data floor of ${number(s.fid_floor)} ` +
      `(recall ${number(s.recall)}; ${s.num_samples ?? "?"} samples, ruler ${s.features ?? "?"})`
      : "not scored (no registry entry for this generator file beside it)");
    add("Commit", model.commit || "not in a commit (an uncommitted or exported-elsewhere generator)");
    add("Generator file", `sha256 ${model.generator_sha256.slice(0, 16)}…`);
    add("Runtime", `${model.runtime}, WebAssembly, in this browser`);
  }

  function option(select, value, text) {
    const element = document.createElement("option");
    element.value = value; element.textContent = text;
    select.append(element);
  }

  function buildControls() {
    const select = $("condition");
    if (model.condition_input === "class") {
      option(select, "", "all classes, in turn");
      model.classes.forEach((name, i) => option(select, String(i), name));
    } else if (model.condition_input === "encoding") {
      $("condition-field").firstChild.textContent = "Photo ";
      model.bank.forEach((entry, i) => option(select, String(i), entry.name));
      $("condition-thumb").hidden = false;
      $("condition-thumb").src = model.bank[0].thumbnail;
      select.addEventListener("change", () => { $("condition-thumb").src = model.bank[Number(select.value)].thumbnail; });
    } else {
      $("condition-field").hidden = true;
      $("condition-note").hidden = false;
      $("condition-note").textContent = model.condition === "cluster"
        ? "This generator draws its own cluster from the noise: each seed picks one."
        : "This generator takes noise only.";
    }
    const modes = $("walk-mode");
    option(modes, "seeds", "two seeds");
    if (model.condition_input === "class") option(modes, "conditions", "two classes");
    if (model.condition_input === "encoding") option(modes, "conditions", "two photos");
    option(modes, "latents", "two of your photos");
    for (const id of ["walk-from", "walk-to", "walk-at"]) {
      for (const other of select.options) if (other.value !== "") option($(id), other.value, other.textContent);
    }
    if (model.condition_input === "none") $("walk-at-field").hidden = true;
    if ($("walk-to").options.length > 1) $("walk-to").selectedIndex = 1;
    modes.addEventListener("change", showWalkFields);
  }

  function showWalkFields() {
    $("walk-seeds").hidden = $("walk-mode").value !== "seeds";
    $("walk-conditions").hidden = $("walk-mode").value !== "conditions";
    $("walk-latents").hidden = $("walk-mode").value !== "latents";
  }

  function save(canvas, name) {
    canvas.toBlob((blob) => {
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = name;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    }, "image/png");
  }

  function wire() {
    $("grid-form").addEventListener("submit", (event) => { event.preventDefault(); drawGrid(event.timeStamp); });
    for (const id of ["condition", "count", "seed"]) $(id).addEventListener("change", (event) => drawGrid(event.timeStamp));
    $("psi").addEventListener("input", (event) => {
      $("psi-value").textContent = Number($("psi").value).toFixed(2);
      drawGrid(event.timeStamp);
    });
    $("new-seed").addEventListener("click", (event) => {
      const words = crypto.getRandomValues(new Uint32Array(2));
      $("seed").value = String((BigInt(words[0]) << 32n) | BigInt(words[1]));
      drawGrid(event.timeStamp);
    });
    $("walk-form").addEventListener("submit", (event) => { event.preventDefault(); drawWalk(event.timeStamp); });
    $("save-grid").addEventListener("click", () => save($("grid"), `fashiongen-seed-${page.grid ? page.grid.seed : 0}.png`));
    $("save-strip").addEventListener("click", () => save($("strip"), "fashiongen-walk.png"));
    $("latent-files").addEventListener("change", (event) => {
      loadLatents(Array.from(event.target.files))
        .then(() => { clearError("latent-error"); document.body.dataset.status = "ready"; })
        .catch((error) => showError(error.message, "latent-error"));
    });
  }

  async function start() {
    const started = performance.now();
    if (!model || !window.ort || !Noise) throw new Error("A file of this page is missing (model.js, ort/ or noise.js); export it again.");
    ort.env.wasm.numThreads = 1;  // threads need cross-origin isolation, which file:// pages never have
    ort.env.wasm.wasmBinary = base64Bytes(window.FASHIONGEN_ORT_WASM);
    // The runtime imports its glue module by URL; a blob: URL is the one a file:// page may import.
    ort.env.wasm.wasmPaths = { mjs: URL.createObjectURL(new Blob([window.FASHIONGEN_ORT_GLUE], { type: "text/javascript" })) };
    session = await ort.InferenceSession.create(base64Bytes(model.onnx), { executionProviders: ["wasm"] });
    describeModel();
    buildControls();
    wire();
    $("status").textContent = "";
    await drawGrid(performance.now());
    page.timings.push({ what: "load", ms: performance.now() - started });
    if (document.body.dataset.status !== "error") document.body.dataset.status = "ready";
  }

  page.ready = start().catch((error) => { showError(error.message); console.error(error); });
})();
