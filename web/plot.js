// Canvas helpers shared by the report and the live page: typed arrays from base64, HiDPI canvases, axes, colours.
"use strict";
const Plot = (() => {
    function bytes(b64) {
        const text = atob(b64);
        const out = new Uint8Array(text.length);
        for (let i = 0; i < text.length; ++i) out[i] = text.charCodeAt(i);
        return out;
    }
    const f32 = (b64) => new Float32Array(bytes(b64).buffer);
    const u32 = (b64) => new Uint32Array(bytes(b64).buffer);

    // A canvas of CSS size w x h drawn at the screen's pixel density; returns its 2-D context in CSS pixels.
    function canvas(element, w, h) {
        const ratio = window.devicePixelRatio || 1;
        element.width = Math.round(w * ratio);
        element.height = Math.round(h * ratio);
        element.style.width = w + "px";
        element.style.height = h + "px";
        const ctx = element.getContext("2d");
        ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
        ctx.clearRect(0, 0, w, h);
        ctx.font = "11px system-ui, sans-serif";
        return ctx;
    }

    function ticks(low, high, count) {
        if (!(high > low)) return [low];
        const raw = (high - low) / Math.max(1, count);
        const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
        const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) || raw;
        const out = [];
        for (let v = Math.ceil(low / step) * step; v <= high + step * 1e-9; v += step) out.push(+v.toPrecision(12));
        return out;
    }

    // A plot frame: margins, scales and axes with ticks; returns {x(v), y(v), box}.
    function frame(ctx, w, h, xRange, yRange, labels = {}) {
        const box = { left: 46, right: w - 8, top: 8, bottom: h - 30 };
        const [x0, x1] = xRange, [y0, y1] = yRange;
        const sx = (v) => box.left + ((v - x0) / (x1 - x0 || 1)) * (box.right - box.left);
        const sy = (v) => box.bottom - ((v - y0) / (y1 - y0 || 1)) * (box.bottom - box.top);
        ctx.strokeStyle = "#9aa4b0";
        ctx.fillStyle = "#4a5562";
        ctx.lineWidth = 1;
        ctx.strokeRect(box.left, box.top, box.right - box.left, box.bottom - box.top);
        ctx.textAlign = "center";
        ctx.textBaseline = "top";
        for (const t of ticks(x0, x1, Math.max(2, Math.floor((box.right - box.left) / 70))))
            ctx.fillText(format(t), sx(t), box.bottom + 3);
        ctx.textAlign = "right";
        ctx.textBaseline = "middle";
        for (const t of ticks(y0, y1, Math.max(2, Math.floor((box.bottom - box.top) / 30))))
            ctx.fillText(format(t), box.left - 4, sy(t));
        ctx.textAlign = "center";
        ctx.textBaseline = "bottom";
        if (labels.x) ctx.fillText(labels.x, (box.left + box.right) / 2, h);
        if (labels.y) {
            ctx.save();
            ctx.translate(10, (box.top + box.bottom) / 2);
            ctx.rotate(-Math.PI / 2);
            ctx.textBaseline = "middle";
            ctx.fillText(labels.y, 0, 0);
            ctx.restore();
        }
        return { x: sx, y: sy, box };
    }

    function format(v) {
        const a = Math.abs(v);
        if (a >= 1e4) return v.toExponential(0);
        if (a >= 100 || v === Math.round(v)) return String(Math.round(v));
        return v.toPrecision(2);
    }

    // A perceptually ordered map (dark blue -> teal -> yellow) for t in [0, 1].
    const stops = [[35, 23, 90], [40, 90, 150], [30, 150, 140], [120, 200, 80], [250, 230, 40]];
    function colour(t) {
        t = Math.min(1, Math.max(0, t)) * (stops.length - 1);
        const i = Math.min(stops.length - 2, Math.floor(t)), f = t - i;
        const c = stops[i].map((v, k) => Math.round(v + (stops[i + 1][k] - v) * f));
        return `rgb(${c[0]},${c[1]},${c[2]})`;
    }
    const palette = colour;

    function extent(values) {
        let low = Infinity, high = -Infinity;
        for (const v of values) {
            if (v < low) low = v;
            if (v > high) high = v;
        }
        return low <= high ? [low, high] : [0, 1];
    }

    return { bytes, f32, u32, canvas, ticks, frame, format, colour, palette, extent };
})();
