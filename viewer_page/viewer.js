// The viewer page: panes that share one view, zoomed and panned with wheel, pinch, drag and keys.
// Drawing is instant from what is at hand (the input image, pieces rendered at other scales);
// 150 ms after the view stops moving it settles (scale snapped, whole output pixels) and the
// pieces it lacks are requested from /render: a quarter-scale preview first, then tiles nearest
// the centre first, two model renders in flight at a time. Requests the view no longer needs are
// aborted (the server then skips them). Fetches and image decoding are asynchronous, so the page
// keeps answering while the server renders.
'use strict';

(() => {
  const T = ViewerTiles;
  const SETTLE_MS = 150;
  const MAX_SCALE = 50;
  const LANES = {model: 2, bicubic: 2};   // requests in flight per kind
  const STORE_PIXELS = 48e6;              // rendered pixels kept (about 190 MB of bitmaps)
  const $ = sel => document.querySelector(sel);

  const V = {
    info: null, input: null, inHW: [1, 1], names: new Map(),
    view: {S: 1, ox: 0, oy: 0}, mode: 'side', left: null, right: 'bicubic', divider: 0.5,
    precision: 'fp32', dpr: 1, canvasW: 1, canvasH: 1, panes: [],
    store: new T.PieceStore(STORE_PIXELS), queue: [], active: new Map(), failed: new Map(),
    settleTimer: null, settledAt: 0, drawPending: false, pointers: new Map(), lastPinch: null,
  };

  // ------------------------------------------------------------------ view geometry

  const grid = (S = V.view.S) => T.outputSize(V.inHW[0], V.inHW[1], S);
  const fitScale = () => Math.min(V.canvasW / V.inHW[1], V.canvasH / V.inHW[0]);
  const minScale = () => Math.min(1, fitScale());
  const clampScale = S => Math.min(MAX_SCALE, Math.max(minScale(), S));

  /** The input point (in input pixels) at device pixel (px, py) of a pane. */
  function inputAt(px, py) {
    const [H, W] = grid();
    return [(px + V.view.ox) * V.inHW[1] / W, (py + V.view.oy) * V.inHW[0] / H];
  }

  /** Move the view so that input point u lands on device pixel (px, py). */
  function place(u, px, py) {
    const [H, W] = grid();
    V.view.ox = u[0] * W / V.inHW[1] - px;
    V.view.oy = u[1] * H / V.inHW[0] - py;
  }

  /** Keep the image over the pane: centred when it is smaller, else covering it. */
  function clampView() {
    const [H, W] = grid();
    const axis = (o, n, c) => (n <= c ? Math.floor((n - c) / 2) : Math.min(Math.max(o, 0), n - c));
    V.view.ox = axis(V.view.ox, W, V.canvasW);
    V.view.oy = axis(V.view.oy, H, V.canvasH);
  }

  function zoomAt(px, py, factor) {
    const u = inputAt(px, py);
    V.view.S = clampScale(V.view.S * factor);
    place(u, px, py);
    clampView();
    viewChanged();
  }

  function setScale(S) {
    zoomAt(V.canvasW / 2, V.canvasH / 2, S / V.view.S);
  }

  function panBy(dx, dy) {
    V.view.ox -= dx;
    V.view.oy -= dy;
    clampView();
    viewChanged();
  }

  function viewChanged() {
    requestDraw();
    clearTimeout(V.settleTimer);
    V.settleTimer = setTimeout(settle, SETTLE_MS);
    updateIdle();
  }

  /** The view at rest: scale snapped, the centre kept, whole output pixels; then ask for pieces. */
  function settle() {
    V.settleTimer = null;
    const c = inputAt(V.canvasW / 2, V.canvasH / 2);
    V.view.S = clampScale(T.snapScale(V.view.S));
    place(c, V.canvasW / 2, V.canvasH / 2);
    V.view.ox = Math.round(V.view.ox);
    V.view.oy = Math.round(V.view.oy);
    clampView();
    V.settledAt = performance.now();
    for (const layer of layers()) Object.assign(layer, {doneAt: null, server: 0, requested: 0});
    writeHash();
    requestDraw();
    replan();
  }

  // ------------------------------------------------------------------ panes

  const layers = () => V.panes.flatMap(p => p.layers);
  const precisionOf = key => (key === 'bicubic' ? 'fp32' : V.precision);

  function makePane(cssW, cssH) {
    const el = document.createElement('div');
    el.className = 'pane';
    el.style.width = cssW + 'px';
    el.style.height = cssH + 'px';
    const canvas = document.createElement('canvas');
    canvas.width = V.canvasW;
    canvas.height = V.canvasH;
    canvas.style.width = cssW + 'px';
    canvas.style.height = cssH + 'px';
    el.appendChild(canvas);
    $('#stage').appendChild(el);
    bindPointer(canvas);
    return {el, canvas, ctx: canvas.getContext('2d', {alpha: false}), layers: []};
  }

  function makeLabel(pane, side) {
    const label = document.createElement('div');
    label.className = 'label ' + side;
    pane.el.appendChild(label);
    return label;
  }

  /** Build the panes for the mode and window size, keeping the input point at the centre. */
  function layout() {
    const centre = V.panes.length ? inputAt(V.canvasW / 2, V.canvasH / 2) : null;
    const stage = $('#stage');
    stage.innerHTML = '';
    V.panes = [];
    V.dpr = window.devicePixelRatio || 1;
    const keys = V.info.sources.map(s => s.key);
    const n = V.mode === 'side' ? keys.length : 1;
    const cols = n <= 3 ? n : Math.ceil(n / 2), rows = Math.ceil(n / cols);
    const gap = 4;
    const cssW = Math.max(1, Math.floor((stage.clientWidth - (cols - 1) * gap) / cols));
    const cssH = Math.max(1, Math.floor((stage.clientHeight - (rows - 1) * gap) / rows));
    stage.style.gridTemplateColumns = `repeat(${cols}, ${cssW}px)`;
    V.canvasW = Math.max(1, Math.round(cssW * V.dpr));
    V.canvasH = Math.max(1, Math.round(cssH * V.dpr));
    const full = {x: 0, y: 0, w: V.canvasW, h: V.canvasH};
    if (V.mode === 'side') {
      for (const key of keys) {
        const pane = makePane(cssW, cssH);
        pane.layers.push({key, clip: full, label: makeLabel(pane, 'left')});
        V.panes.push(pane);
      }
    } else {
      const pane = makePane(cssW, cssH);
      pane.layers.push({key: V.left, clip: null, label: makeLabel(pane, 'left')});
      pane.layers.push({key: V.right, clip: null, label: makeLabel(pane, 'right')});
      pane.divider = document.createElement('div');
      pane.divider.className = 'divider';
      pane.el.appendChild(pane.divider);
      bindDivider(pane);
      V.panes.push(pane);
      placeDivider();
    }
    if (centre) place(centre, V.canvasW / 2, V.canvasH / 2);
    V.view.S = clampScale(V.view.S);
    clampView();
  }

  function placeDivider() {
    const pane = V.panes[0];
    const d = Math.round(V.divider * V.canvasW);
    pane.layers[0].clip = {x: 0, y: 0, w: d, h: V.canvasH};
    pane.layers[1].clip = {x: d, y: 0, w: V.canvasW - d, h: V.canvasH};
    pane.divider.style.left = (d / V.dpr) + 'px';
  }

  // ------------------------------------------------------------------ drawing

  function requestDraw() {
    if (V.drawPending) return;
    V.drawPending = true;
    requestAnimationFrame(draw);
  }

  function draw() {
    V.drawPending = false;
    const {S, ox, oy} = V.view;
    const [H, W] = grid();
    for (const pane of V.panes) {
      const ctx = pane.ctx;
      ctx.fillStyle = '#202124';
      ctx.fillRect(0, 0, V.canvasW, V.canvasH);
      for (const layer of pane.layers) {
        const c = layer.clip;
        if (c.w <= 0) continue;
        ctx.save();
        ctx.beginPath();
        ctx.rect(c.x, c.y, c.w, c.h);
        ctx.clip();
        ctx.imageSmoothingEnabled = true;
        ctx.imageSmoothingQuality = 'high';
        ctx.drawImage(V.input, -ox, -oy, W, H);  // instant: the input, smoothed by the browser
        const precision = precisionOf(layer.key);
        for (const p of V.store.forDrawing(layer.key, precision, S)) {
          if (p.S === S) {  // this scale: one output pixel on one device pixel
            ctx.imageSmoothingEnabled = false;
            ctx.drawImage(p.bitmap, p.rect.x - ox, p.rect.y - oy);
          } else {          // another scale: a preview, stretched
            const sx = W / p.grid[1], sy = H / p.grid[0];
            ctx.imageSmoothingEnabled = true;
            ctx.drawImage(p.bitmap, p.rect.x * sx - ox, p.rect.y * sy - oy, p.rect.w * sx, p.rect.h * sy);
          }
        }
        ctx.restore();
      }
    }
    if (document.activeElement !== $('#scale')) $('#scale').value = S.toFixed(S >= 1 ? 2 : 3);
    updateLabels();
    updateIdle();
  }

  function updateLabels() {
    const S = V.view.S;
    for (const layer of layers()) {
      const precision = precisionOf(layer.key);
      const name = V.names.get(layer.key) + (layer.key === 'bicubic' ? '' : ` · ${precision}`);
      const failed = [...V.failed.values()].find(f => f.job.key === layer.key && f.job.S === S);
      let status;
      if (failed) {
        status = failed.text;
      } else if (V.settleTimer !== null || !layer.plan || !layer.plan.visible) {
        status = '…';
      } else {
        const vis = layer.plan.visible;
        const left = T.subtract(vis, V.store.rects(layer.key, precision, S).filter(r => T.intersect(r, vis)));
        const missing = left.reduce((sum, r) => sum + r.w * r.h, 0);
        if (missing === 0) {
          if (layer.doneAt === null) layer.doneAt = performance.now();
          status = layer.requested === 0 ? 'cached'
            : `${((layer.doneAt - V.settledAt) / 1000).toFixed(2)} s (server ${layer.server.toFixed(2)} s)`;
        } else {
          status = `rendering ${Math.floor(100 * (1 - missing / (vis.w * vis.h)))}%`;
        }
      }
      layer.label.textContent = `${name} · ×${S.toFixed(S >= 1 ? 2 : 3)} · ${status}`;
      layer.label.classList.toggle('error', Boolean(failed));
    }
  }

  // ------------------------------------------------------------------ requests

  function urlFor(key, precision, S, r) {
    const p = new URLSearchParams({model: key, scale: String(S), x: r.x, y: r.y, w: r.w, h: r.h});
    if (key !== 'bicubic') p.set('precision', precision);
    return '/render?' + p.toString();
  }

  function rectsOf(entries, key, precision, S) {
    return entries.filter(e => e.job.key === key && e.job.precision === precision && e.job.S === S).map(e => e.job.rect);
  }

  /** Whether an in-flight request still shows in some layer at the current view. */
  function wanted(job) {
    return layers().some(layer => {
      if (layer.key !== job.key || precisionOf(layer.key) !== job.precision || !layer.plan || !layer.plan.visible) return false;
      if (job.S === V.view.S) return Boolean(T.intersect(job.rect, layer.plan.visible));
      if (job.preview && job.S === T.snapScale(V.view.S / T.PREVIEW_FACTOR)) {
        return Boolean(T.intersect(job.rect, T.mapRect(layer.plan.visible, grid(), grid(job.S))));
      }
      return false;
    });
  }

  /** What to request now for every layer; aborts what no layer needs any more. */
  function replan() {
    if (V.settleTimer !== null) return;  // the view is moving: plan when it rests
    const jobs = new Map();
    const active = [...V.active.values()], failed = [...V.failed.values()];
    for (const layer of layers()) {
      const key = layer.key, precision = precisionOf(key);
      const have = S => [...V.store.rects(key, precision, S), ...rectsOf(active, key, precision, S),
                         ...rectsOf(failed, key, precision, S)];
      layer.plan = T.planLayer(V.view, layer.clip, V.inHW, have, key !== 'bicubic', V.info.max_region_pixels);
      for (const j of layer.plan.jobs) {
        const url = urlFor(key, precision, j.S, j.rect);
        jobs.set(url, {...j, key, precision, url, lane: key === 'bicubic' ? 'bicubic' : 'model', layer});
      }
    }
    for (const [url, a] of V.active) {
      if (!wanted(a.job)) {
        a.controller.abort();
        V.active.delete(url);
      }
    }
    V.queue = [...jobs.values()].sort((a, b) => a.priority - b.priority);
    pump();
    updateLabels();
    updateIdle();
  }

  function pump() {
    for (const lane of Object.keys(LANES)) {
      let busy = [...V.active.values()].filter(a => a.job.lane === lane).length;
      while (busy < LANES[lane]) {
        const i = V.queue.findIndex(j => j.lane === lane);
        if (i < 0) break;
        start(V.queue.splice(i, 1)[0]);
        busy++;
      }
    }
  }

  function start(job) {
    const controller = new AbortController();
    V.active.set(job.url, {job, controller});
    if (!job.preview && job.S === V.view.S) job.layer.requested++;
    fetch(job.url, {signal: controller.signal}).then(async r => {
      if (!r.ok) {
        V.failed.set(job.url, {job, text: (await r.text()).trim() || `error: HTTP ${r.status}`});
        return;
      }
      const seconds = parseFloat(r.headers.get('X-Render-Seconds')) || 0;
      const bitmap = await createImageBitmap(await r.blob());
      V.store.add({key: job.key, precision: job.precision, S: job.S, grid: grid(job.S), rect: job.rect, bitmap, seconds});
      if (!job.preview && job.S === V.view.S) job.layer.server += seconds;
    }).catch(e => {
      if (e.name !== 'AbortError') V.failed.set(job.url, {job, text: `error: ${e.message}`});
    }).finally(() => {
      const a = V.active.get(job.url);
      if (a && a.controller === controller) V.active.delete(job.url);
      requestDraw();
      replan();
    });
  }

  function updateIdle() {
    const idle = V.settleTimer === null && !V.drawPending && V.queue.length === 0 && V.active.size === 0;
    document.body.dataset.idle = idle ? '1' : '0';
  }

  // ------------------------------------------------------------------ input

  function devicePoint(e, canvas) {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * V.dpr, (e.clientY - r.top) * V.dpr];
  }

  function bindPointer(canvas) {
    canvas.addEventListener('wheel', e => {
      e.preventDefault();
      const unit = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? 400 : 1;
      const [px, py] = devicePoint(e, canvas);
      zoomAt(px, py, Math.exp(-e.deltaY * unit * (e.ctrlKey ? 0.01 : 0.0015)));  // ctrlKey: a trackpad pinch
    }, {passive: false});
    canvas.addEventListener('pointerdown', e => {
      canvas.setPointerCapture(e.pointerId);
      V.pointers.set(e.pointerId, devicePoint(e, canvas));
      V.lastPinch = null;
    });
    canvas.addEventListener('pointermove', e => {
      if (!V.pointers.has(e.pointerId)) return;
      const prev = V.pointers.get(e.pointerId), now = devicePoint(e, canvas);
      V.pointers.set(e.pointerId, now);
      if (V.pointers.size === 1) {
        panBy(now[0] - prev[0], now[1] - prev[1]);
      } else if (V.pointers.size === 2) {  // pinch: zoom about the midpoint, which also pans
        const [a, b] = [...V.pointers.values()];
        const mid = [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2], dist = Math.hypot(a[0] - b[0], a[1] - b[1]);
        if (V.lastPinch) {
          V.view.ox -= mid[0] - V.lastPinch.mid[0];
          V.view.oy -= mid[1] - V.lastPinch.mid[1];
          zoomAt(mid[0], mid[1], dist / Math.max(1, V.lastPinch.dist));
        }
        V.lastPinch = {mid, dist};
      }
    });
    const up = e => { V.pointers.delete(e.pointerId); V.lastPinch = null; };
    canvas.addEventListener('pointerup', up);
    canvas.addEventListener('pointercancel', up);
    canvas.addEventListener('dblclick', e => {
      const [px, py] = devicePoint(e, canvas);
      zoomAt(px, py, e.shiftKey ? 0.5 : 2);
    });
  }

  function bindDivider(pane) {
    pane.divider.addEventListener('pointerdown', e => {
      e.stopPropagation();
      pane.divider.setPointerCapture(e.pointerId);
      const move = ev => {
        const r = pane.el.getBoundingClientRect();
        V.divider = Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width));
        placeDivider();
        viewChanged();
      };
      const stop = () => {
        pane.divider.removeEventListener('pointermove', move);
        pane.divider.removeEventListener('pointerup', stop);
      };
      pane.divider.addEventListener('pointermove', move);
      pane.divider.addEventListener('pointerup', stop);
    });
  }

  function bindControls() {
    $('#mode').addEventListener('change', e => { V.mode = e.target.value; $('#swipe-pick').hidden = V.mode !== 'swipe'; relayout(); });
    $('#left').addEventListener('change', e => { V.left = e.target.value; relayout(); });
    $('#right').addEventListener('change', e => { V.right = e.target.value; relayout(); });
    $('#bf16').addEventListener('change', e => { V.precision = e.target.checked ? 'bf16' : 'fp32'; viewChanged(); });
    $('#fit').addEventListener('click', () => setScale(fitScale()));
    $('#one').addEventListener('click', () => setScale(1));
    $('#scale').addEventListener('change', e => {
      const S = parseFloat(e.target.value);
      if (Number.isFinite(S) && S > 0) setScale(S);
    });
    window.addEventListener('keydown', e => {
      if (e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement) return;
      const step = 0.1 * Math.min(V.canvasW, V.canvasH);
      const keys = {
        '+': () => setScale(V.view.S * 1.25), '=': () => setScale(V.view.S * 1.25), '-': () => setScale(V.view.S / 1.25),
        '0': () => setScale(fitScale()), '1': () => setScale(1),
        ArrowLeft: () => panBy(step, 0), ArrowRight: () => panBy(-step, 0),
        ArrowUp: () => panBy(0, step), ArrowDown: () => panBy(0, -step),
      };
      if (keys[e.key]) { e.preventDefault(); keys[e.key](); }
    });
    window.addEventListener('resize', relayout);
  }

  function relayout() {
    layout();
    viewChanged();
  }

  // ------------------------------------------------------------------ address (#s=12&cx=0.5&cy=0.5&mode=swipe)

  function readHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    const num = k => (p.has(k) && Number.isFinite(parseFloat(p.get(k))) ? parseFloat(p.get(k)) : null);
    const keys = V.info.sources.map(s => s.key);
    if (p.get('mode') === 'swipe' || p.get('mode') === 'side') V.mode = p.get('mode');
    if (keys.includes(p.get('left'))) V.left = p.get('left');
    if (keys.includes(p.get('right'))) V.right = p.get('right');
    if (p.has('bf16') && !$('#bf16').disabled) V.precision = p.get('bf16') === '1' ? 'bf16' : 'fp32';
    if (num('divider') !== null) V.divider = Math.min(1, Math.max(0, num('divider')));
    return {S: num('s'), cx: num('cx'), cy: num('cy')};
  }

  function writeHash() {
    const c = inputAt(V.canvasW / 2, V.canvasH / 2);
    const p = new URLSearchParams({s: V.view.S, cx: (c[0] / V.inHW[1]).toFixed(4), cy: (c[1] / V.inHW[0]).toFixed(4),
                                   mode: V.mode});
    if (V.mode === 'swipe') { p.set('left', V.left); p.set('right', V.right); p.set('divider', V.divider.toFixed(3)); }
    p.set('bf16', V.precision === 'bf16' ? '1' : '0');
    history.replaceState(null, '', '#' + p.toString());
  }

  // ------------------------------------------------------------------ start

  async function init() {
    const info = await (await fetch('/info')).json();
    V.info = info;
    V.inHW = [info.input.height, info.input.width];
    V.input = await createImageBitmap(await (await fetch('/input.png')).blob());
    for (const s of info.sources) V.names.set(s.key, s.name);
    V.left = info.sources[0].key;
    document.title = `${info.input.name} · LIIF viewer`;
    $('#title').textContent = info.input.name;
    for (const sel of ['#left', '#right']) for (const s of info.sources) $(sel).add(new Option(s.name, s.key));
    const bf16 = $('#bf16');
    bf16.disabled = !info.precision.bf16_native;
    if (bf16.disabled) $('#bf16-label').title = 'this device has no native bf16 (it would be slower than fp32)';
    V.precision = info.precision.default;
    const want = readHash();
    bf16.checked = V.precision === 'bf16';
    $('#mode').value = V.mode;
    $('#swipe-pick').hidden = V.mode !== 'swipe';
    $('#left').value = V.left;
    $('#right').value = V.right;
    layout();
    V.view.S = clampScale(want.S || fitScale());
    place([(want.cx ?? 0.5) * V.inHW[1], (want.cy ?? 0.5) * V.inHW[0]], V.canvasW / 2, V.canvasH / 2);
    clampView();
    bindControls();
    viewChanged();
  }

  // For scripts and tests: the state of the view, and a pane's pixels as a PNG data URL.
  window.viewer = {
    state: () => ({
      S: V.view.S, ox: V.view.ox, oy: V.view.oy, grid: grid(), canvas: [V.canvasW, V.canvasH], dpr: V.dpr,
      mode: V.mode, precision: V.precision, idle: document.body.dataset.idle === '1',
      panes: V.panes.map(p => ({layers: p.layers.map(l => ({key: l.key, clip: l.clip, label: l.label.textContent}))})),
      requested: layers().reduce((n, l) => n + (l.requested || 0), 0), inflight: V.active.size,
    }),
    panePNG: i => V.panes[i].canvas.toDataURL('image/png'),
    ready: null,
  };
  window.viewer.ready = init().catch(e => { $('#message').textContent = `error: ${e.message}`; throw e; });
})();
