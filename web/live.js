// The live page: server-sent events from `spikeline stream --http`. "hello" (probe, rate) starts a fresh state,
// "update" (10 per second) brings new spikes and running totals; rates come from differences of totals over data
// time, so a reconnect (a new hello and a backfill of the last seconds) leaves every panel correct.
"use strict";
(() => {
    const $ = (id) => document.getElementById(id);
    window.addEventListener("error", (e) => { $("errors").textContent += "error: " + e.message + "\n"; });
    const RASTER_SECONDS = 5, RATE_SMOOTHING = 0.3;
    const state = window.liveState = { updates: 0, hellos: 0, latestSample: 0, spikesDrawn: 0, ended: false };
    let hello = null, spikes = [], channelRate = null, unitRate = new Map(), lastTotals = null, decoded = [], cursor = [];

    const unitColour = (unit) => (unit < 0 ? "#9aa4b0" : `hsl(${(unit * 137.508) % 360}, 70%, 42%)`);

    function onHello(data) {
        hello = data;
        state.hellos += 1;
        spikes = [];
        channelRate = new Float64Array(hello.n_channels);
        unitRate = new Map();
        lastTotals = null;
        decoded = [];
        cursor = [];
        $("subtitle").textContent = `${hello.source} — ${hello.n_channels} channels, ${hello.sample_rate} Hz, ${hello.probe}`;
        $("cursor").hidden = !hello.decoder;
    }

    function onUpdate(u) {
        if (!hello) return;
        state.updates += 1;
        const s = u.spikes;
        for (let i = 0; i < s.sample.length; ++i) spikes.push([s.sample[i], s.channel[i], s.unit[i]]);
        const oldest = u.frames - RASTER_SECONDS * hello.sample_rate;
        let drop = 0;
        while (drop < spikes.length && spikes[drop][0] < oldest) ++drop;
        if (drop) spikes.splice(0, drop);
        state.latestSample = Math.max(state.latestSample, u.frames);
        // Rates: difference of running totals over the data time between two updates.
        if (lastTotals && !u.backfill && u.frames > lastTotals.frames) {
            const dt = (u.frames - lastTotals.frames) / hello.sample_rate;
            for (let c = 0; c < hello.n_channels; ++c) {
                const r = (u.channel_counts[c] - lastTotals.channels[c]) / dt;
                channelRate[c] += RATE_SMOOTHING * (r - channelRate[c]);
            }
            for (const [unit, count] of Object.entries(u.unit_counts)) {
                const r = (count - (lastTotals.units[unit] || 0)) / dt;
                unitRate.set(+unit, (unitRate.get(+unit) || 0) + RATE_SMOOTHING * (r - (unitRate.get(+unit) || 0)));
            }
        }
        if (!lastTotals || u.frames > lastTotals.frames || u.backfill)
            lastTotals = { frames: u.frames, channels: u.channel_counts.slice(), units: Object.assign({}, u.unit_counts) };
        for (const [endSample, vx, vy] of u.decoded) {
            decoded.push([endSample, vx, vy]);
            const previous = cursor.length ? cursor[cursor.length - 1] : [0, 0, 0];
            const dt = cursor.length ? (endSample - previous[0]) / hello.sample_rate : 0;
            cursor.push([endSample, previous[1] + vx * dt, previous[2] + vy * dt]);
            if (cursor.length > 3000) cursor.shift();
        }
        $("clock").textContent = `${u.seconds.toFixed(1)} s of data, ${u.spikes_total} spikes` + (u.spikes_dropped ? ` (${u.spikes_dropped} not shown)` : "");
        drawRaster(u);
        drawHeatmap();
        drawLink(u);
        drawLatency(u.latency);
        drawUnits();
        if (hello.decoder) drawCursor();
        if (u.ended) {
            state.ended = true;
            setStatus("ended", `stream ended (${u.ended_by || "end"})`);
            source.close(); // the server is going away: no reconnects
        }
    }

    const positions = () => hello.positions;
    function depthRange() {
        const ys = positions().filter((_, i) => i % 2 === 1);
        return Plot.extent(ys);
    }

    function drawRaster(u) {
        const width = Math.max(560, Math.min(1200, $("raster").clientWidth - 30)), height = 420;
        const ctx = Plot.canvas($("raster-canvas"), width, height);
        const t1 = u.frames / hello.sample_rate, t0 = t1 - RASTER_SECONDS;
        const [y0, y1] = depthRange();
        const f = Plot.frame(ctx, width, height, [t0, t1], [y0 - 10, y1 + 10], { x: "time (s)", y: "depth (µm)" });
        const p = positions();
        for (const [sample, channel, unit] of spikes) {
            const t = sample / hello.sample_rate;
            if (t < t0) continue;
            ctx.fillStyle = unitColour(unit);
            ctx.fillRect(f.x(t) - 1, f.y(p[2 * channel + 1]) - 1, 2, 2);
        }
        state.spikesDrawn = spikes.length;
        state.rasterEnd = t1;
        $("raster-legend").textContent = `last ${RASTER_SECONDS} s; colour: unit (grey: unsorted)` + (u.spikes.thinned ? "; thinned" : "");
    }

    function drawHeatmap() {
        const p = positions(), n = hello.n_channels;
        const xs = p.filter((_, i) => i % 2 === 0), ys = p.filter((_, i) => i % 2 === 1);
        const [x0, x1] = Plot.extent(xs), [y0, y1] = Plot.extent(ys);
        const height = 420, width = Math.max(140, Math.min(420, 80 + ((x1 - x0) / Math.max(1, y1 - y0)) * (height - 40) * 3));
        const ctx = Plot.canvas($("heatmap-canvas"), width, height);
        const f = Plot.frame(ctx, width, height, [x0 - 20, x1 + 20], [y0 - 10, y1 + 10], { x: "x (µm)", y: "depth (µm)" });
        let high = 1;
        for (let c = 0; c < n; ++c) high = Math.max(high, channelRate[c]);
        for (let c = 0; c < n; ++c) {
            ctx.fillStyle = Plot.colour(Math.sqrt(channelRate[c] / high));
            ctx.fillRect(f.x(xs[c]) - 3, f.y(ys[c]) - 3, 6, 6);
        }
        $("heatmap-legend").textContent = `spikes/s per contact, square-root scale, 0–${high.toFixed(0)}`;
    }

    function drawLink(u) {
        const l = u.link, rows = [];
        const add = (k, v) => { if (v !== undefined) rows.push([k, v]); };
        add("datagrams", l.datagrams);
        add("packets lost (gaps)", l.gaps);
        add("frames lost", l.gap_frames);
        add("CRC failures", l.bad_crc);
        add("malformed", l.malformed);
        add("reordered", l.reordered);
        add("duplicates", l.duplicates);
        add("late", l.late);
        add("clock resyncs", l.resyncs);
        add("injected losses", l.injected_lost_blocks);
        add("overrun blocks", u.overrun_blocks);
        if (!("datagrams" in l)) rows.unshift(["source", "not a UDP link: no packet counters"]);
        $("link-table").innerHTML = rows.map(([k, v]) => `<tr><td>${k}</td><td>${v}</td></tr>`).join("");
    }

    function drawLatency(latency) {
        const bins = latency.bins, width = 320, height = 220;
        const ctx = Plot.canvas($("latency-canvas"), width, height);
        if (!bins.length) return;
        const shown = bins.length - 1, binMs = latency.bin_us / 1000;
        let total = 0, last = 1;
        bins.forEach((c, i) => { total += c; if (c && i < shown) last = i + 1; });
        const upper = Math.max(1, Math.ceil((last * binMs) / 0.5) * 0.5);
        const f = Plot.frame(ctx, width, height, [0, upper], [0, Math.max(1, ...bins.slice(0, shown))], { x: "latency (ms)", y: "spikes" });
        ctx.fillStyle = "#2f6db5";
        for (let i = 0; i < shown && i * binMs < upper; ++i)
            if (bins[i]) ctx.fillRect(f.x(i * binMs), f.y(bins[i]), Math.max(1, f.x(binMs) - f.x(0) - 0.5), f.y(0) - f.y(bins[i]));
        let below = 0, p99 = null;
        for (let i = 0; i < bins.length && p99 === null; ++i) { below += bins[i]; if (below >= 0.99 * total) p99 = (i + 1) * binMs; }
        const beyond = p99 === null || p99 > shown * binMs;
        $("latency-legend").textContent = total ? `${total} spikes, p99 ${beyond ? ">" : "≤"} ${beyond ? shown * binMs : p99.toFixed(2)} ms` +
            (bins[shown] ? `, ${bins[shown]} beyond ${shown * binMs} ms` : "") : "no spikes yet";
    }

    function drawUnits() {
        const entries = [...unitRate.entries()].filter(([unit]) => unit >= 0).sort((a, b) => b[1] - a[1]).slice(0, 40);
        const width = 340, height = 220, ctx = Plot.canvas($("units-canvas"), width, height);
        const high = Math.max(1, ...entries.map((e) => e[1]));
        const f = Plot.frame(ctx, width, height, [0, Math.max(1, entries.length)], [0, high], { x: "units, fastest first", y: "spikes/s" });
        entries.forEach(([unit, rate], i) => {
            ctx.fillStyle = unitColour(unit);
            ctx.fillRect(f.x(i) + 0.5, f.y(rate), Math.max(1, f.x(1) - f.x(0) - 1), f.y(0) - f.y(rate));
        });
        const sorted = [...unitRate.keys()].filter((u) => u >= 0).length;
        $("units-legend").textContent = sorted ? `${sorted} units` : (hello.calibration_s ? `unsorted until calibration (${hello.calibration_s} s)` : "no sorting");
    }

    function drawCursor() {
        const width = 260, height = 260, ctx = Plot.canvas($("cursor-canvas"), width, height);
        if (!cursor.length) return;
        const recent = cursor.slice(-300);
        const xs = recent.map((c) => c[1]), ys = recent.map((c) => c[2]);
        const [a0, a1] = Plot.extent(xs), [b0, b1] = Plot.extent(ys);
        const half = Math.max(1e-6, a1 - a0, b1 - b0) / 2 * 1.1, cx = (a0 + a1) / 2, cy = (b0 + b1) / 2;
        const f = Plot.frame(ctx, width, height, [cx - half, cx + half], [cy - half, cy + half], { x: "x", y: "y" });
        ctx.strokeStyle = "#9aa4b0";
        ctx.beginPath();
        recent.forEach(([, x, y], i) => (i ? ctx.lineTo(f.x(x), f.y(y)) : ctx.moveTo(f.x(x), f.y(y))));
        ctx.stroke();
        const [, x, y] = recent[recent.length - 1];
        ctx.fillStyle = "#e0245e";
        ctx.beginPath();
        ctx.arc(f.x(x), f.y(y), 5, 0, 2 * Math.PI);
        ctx.fill();
        const [, vx, vy] = decoded[decoded.length - 1];
        $("cursor-legend").textContent = `integrated decoded velocity; now v = (${vx.toFixed(2)}, ${vy.toFixed(2)})`;
        state.decodedBins = decoded.length;
    }

    function setStatus(kind, text) {
        $("status").className = "status " + kind;
        $("status").textContent = text;
    }

    const source = new EventSource("events");
    source.addEventListener("open", () => { if (!state.ended) setStatus("live", "live"); });
    source.addEventListener("error", () => { if (!state.ended) setStatus("lost", "connection lost, reconnecting…"); });
    source.addEventListener("hello", (e) => onHello(JSON.parse(e.data)));
    source.addEventListener("update", (e) => onUpdate(JSON.parse(e.data)));
})();
