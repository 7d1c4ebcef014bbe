// Geometry of the viewer, without the page: output grids, rectangles, which regions to ask the
// server for, and the store of rendered pieces. Pure functions; viewer.js draws and fetches.
//
// A view is {S, ox, oy}: the scale S (output pixels per input pixel, the model's scale) and the
// output-grid position of a pane's top-left device pixel. At scale S the output grid is
// outputSize(inH, inW, S), exactly demo.py's (and the server's) grid, so a settled view (integer
// ox, oy) shows each output pixel on one device pixel. Rectangles are {x, y, w, h} in pixels.
'use strict';

const ViewerTiles = (() => {
  const TILE = 256;             // regions are cut along a 256-pixel grid of the output
  const PREVIEW_FACTOR = 4;     // the quick preview renders the view at a quarter of its scale
  const PREVIEW_FROM_SCALE = 2; // below this an exact render is quick enough on its own

  /** [H, W] of the output at scale S: round half up, at least 1 (inference/upscale.py). */
  function outputSize(inH, inW, S) {
    return [Math.max(1, Math.floor(inH * S + 0.5)), Math.max(1, Math.floor(inW * S + 0.5))];
  }

  /** The scale a settled view uses: two decimals from x1 on, three below. */
  function snapScale(S) {
    return S >= 1 ? Math.round(S * 100) / 100 : Math.max(0.001, Math.round(S * 1000) / 1000);
  }

  function area(r) { return r.w * r.h; }

  /** The overlap of two rectangles, or null. */
  function intersect(a, b) {
    const x = Math.max(a.x, b.x), y = Math.max(a.y, b.y);
    const x1 = Math.min(a.x + a.w, b.x + b.w), y1 = Math.min(a.y + a.h, b.y + b.h);
    return x < x1 && y < y1 ? {x, y, w: x1 - x, h: y1 - y} : null;
  }

  /** The smallest rectangle holding all of rects (non-empty list). */
  function bbox(rects) {
    const x = Math.min(...rects.map(r => r.x)), y = Math.min(...rects.map(r => r.y));
    const x1 = Math.max(...rects.map(r => r.x + r.w)), y1 = Math.max(...rects.map(r => r.y + r.h));
    return {x, y, w: x1 - x, h: y1 - y};
  }

  /** rect minus the union of cuts: disjoint rectangles (bands above and below each cut, then
   *  the pieces left and right of it). */
  function subtract(rect, cuts) {
    let out = [rect];
    for (const c of cuts) {
      const next = [];
      for (const a of out) {
        const i = intersect(a, c);
        if (!i) { next.push(a); continue; }
        if (a.y < i.y) next.push({x: a.x, y: a.y, w: a.w, h: i.y - a.y});
        if (i.y + i.h < a.y + a.h) next.push({x: a.x, y: i.y + i.h, w: a.w, h: a.y + a.h - i.y - i.h});
        if (a.x < i.x) next.push({x: a.x, y: i.y, w: i.x - a.x, h: i.h});
        if (i.x + i.w < a.x + a.w) next.push({x: i.x + i.w, y: i.y, w: a.x + a.w - i.x - i.w, h: i.h});
      }
      out = next;
    }
    return out;
  }

  /** The output pixels a pane's clip {x, y, w, h} (device pixels) shows: a rectangle of the grid
   *  [H, W] covering every pixel at least partly visible, or null when none is. */
  function visibleRect(view, clip, grid) {
    const x0 = Math.max(0, Math.floor(view.ox + clip.x)), y0 = Math.max(0, Math.floor(view.oy + clip.y));
    const x1 = Math.min(grid[1], Math.ceil(view.ox + clip.x + clip.w));
    const y1 = Math.min(grid[0], Math.ceil(view.oy + clip.y + clip.h));
    return x0 < x1 && y0 < y1 ? {x: x0, y: y0, w: x1 - x0, h: y1 - y0} : null;
  }

  /** A rectangle of the grid `from` mapped onto the grid `to` (same input, another scale),
   *  widened to whole pixels and kept inside `to`. */
  function mapRect(r, from, to) {
    const sy = to[0] / from[0], sx = to[1] / from[1];
    const x0 = Math.max(0, Math.floor(r.x * sx)), y0 = Math.max(0, Math.floor(r.y * sy));
    const x1 = Math.min(to[1], Math.ceil((r.x + r.w) * sx)), y1 = Math.min(to[0], Math.ceil((r.y + r.h) * sy));
    return {x: x0, y: y0, w: Math.max(1, x1 - x0), h: Math.max(1, y1 - y0)};
  }

  /** Missing rectangles cut along the TILE grid; a tile's fragments become their bounding box
   *  when there are more than two (fewer, larger requests). */
  function cutToTiles(rects) {
    const byTile = new Map();
    for (const r of rects) {
      for (let ty = Math.floor(r.y / TILE); ty * TILE < r.y + r.h; ty++) {
        for (let tx = Math.floor(r.x / TILE); tx * TILE < r.x + r.w; tx++) {
          const part = intersect(r, {x: tx * TILE, y: ty * TILE, w: TILE, h: TILE});
          if (!part) continue;
          const id = ty + ',' + tx;
          if (!byTile.has(id)) byTile.set(id, []);
          byTile.get(id).push(part);
        }
      }
    }
    const out = [];
    for (const parts of byTile.values()) {
      if (parts.length > 2) out.push(bbox(parts)); else out.push(...parts);
    }
    return out;
  }

  /** The requests one pane layer needs for the view: the visible output pixels at scale S that
   *  no stored or requested piece covers, cut into tiles, nearest the centre first; before them,
   *  when over half the view is missing and S >= PREVIEW_FROM_SCALE, one request for the view at
   *  S / PREVIEW_FACTOR (a preview) unless that is covered too. `have(S)` lists the rectangles
   *  stored or requested at scale S. Each job: {S, rect, priority, preview}. */
  function planLayer(view, clip, inHW, have, allowPreview, maxPixels) {
    const grid = outputSize(inHW[0], inHW[1], view.S);
    const vis = visibleRect(view, clip, grid);
    if (!vis) return {jobs: [], missing: 0, visible: null};
    const missing = subtract(vis, have(view.S).filter(r => intersect(r, vis)));
    const missingArea = missing.reduce((sum, r) => sum + area(r), 0);
    const jobs = [];
    const cx = vis.x + vis.w / 2, cy = vis.y + vis.h / 2;
    for (const rect of cutToTiles(missing)) {
      const d = Math.hypot(rect.x + rect.w / 2 - cx, rect.y + rect.h / 2 - cy);
      jobs.push({S: view.S, rect, priority: 1 + d, preview: false});
    }
    if (allowPreview && view.S >= PREVIEW_FROM_SCALE && missingArea > area(vis) / 2) {
      const Sp = snapScale(view.S / PREVIEW_FACTOR);
      const gridP = outputSize(inHW[0], inHW[1], Sp);
      const visP = mapRect(vis, grid, gridP);
      const missP = subtract(visP, have(Sp).filter(r => intersect(r, visP)));
      if (missP.length) {
        const rect = bbox(missP);
        if (area(rect) <= maxPixels) jobs.push({S: Sp, rect, priority: 0, preview: true});
      }
    }
    return {jobs, missing: missingArea, visible: vis};
  }

  /** Rendered pieces {key, precision, S, grid, rect, bitmap, seconds}, kept while their pixels
   *  fit in a budget; the least recently drawn go first (their bitmaps closed). */
  class PieceStore {
    constructor(budgetPixels) { this.budget = budgetPixels; this.pieces = []; this.pixels = 0; this.clock = 0; }

    add(piece) {
      piece.used = ++this.clock;
      this.pieces.push(piece);
      this.pixels += area(piece.rect);
      while (this.pixels > this.budget && this.pieces.length > 1) {
        let oldest = 0;
        for (let i = 1; i < this.pieces.length; i++) if (this.pieces[i].used < this.pieces[oldest].used) oldest = i;
        const [gone] = this.pieces.splice(oldest, 1);
        this.pixels -= area(gone.rect);
        if (gone.bitmap && gone.bitmap.close) gone.bitmap.close();
      }
    }

    /** Pieces of one source (every scale and precision), in the order to draw them: the farthest
     *  in scale first, another precision before this one, the exact ones (S and precision) last.
     *  Marks them used. */
    forDrawing(key, precision, S) {
      const mine = this.pieces.filter(p => p.key === key);
      const rank = p => (p.S === S && p.precision === precision ? -1
        : Math.abs(Math.log(p.S / S)) + (p.precision === precision ? 0 : 1e-3));
      mine.sort((a, b) => rank(b) - rank(a));
      for (const p of mine) p.used = ++this.clock;
      return mine;
    }

    rects(key, precision, S) {
      return this.pieces.filter(p => p.key === key && p.precision === precision && p.S === S).map(p => p.rect);
    }

    clear() {
      for (const p of this.pieces) if (p.bitmap && p.bitmap.close) p.bitmap.close();
      this.pieces = []; this.pixels = 0;
    }
  }

  return {TILE, PREVIEW_FACTOR, outputSize, snapScale, intersect, subtract, bbox, visibleRect, mapRect,
          cutToTiles, planLayer, PieceStore};
})();
