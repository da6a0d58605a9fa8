// The report page: everything comes from the inline JSON; panels are drawn when shown (one unit at a time).
"use strict";
(() => {
    const errors = document.getElementById("errors");
    window.addEventListener("error", (e) => { errors.textContent += "error: " + e.message + "\n"; });

    const data = JSON.parse(document.getElementById("report-data").textContent);
    const run = data.run || {};
    const units = data.units;
    const positions = Plot.f32(data.channel_positions);
    const byCluster = new Map(units.map((u) => [u.cluster_id, u]));
    const $ = (id) => document.getElementById(id);
    const fixed = (v, d) => (typeof v === "number" ? v.toFixed(d) : v === undefined ? "" : String(v));
    const escape = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

    // Summary
    $("subtitle").textContent = run.recording || data.sort_dir;
    const settings = (object) => Object.entries(object || {}).map(([k, v]) => `${k} ${v}`).join(", ");
    const summary = [
        ["sort folder", data.sort_dir], ["recording", run.recording], ["probe", run.probe],
        ["channels", data.n_channels], ["sample rate", run.sample_rate + " Hz"],
        ["duration", data.duration_s.toFixed(1) + " s"], ["spikes", data.n_spikes + " (" + data.n_unsorted + " unsorted)"],
        ["units", units.length + " (" + units.filter((u) => u.group === "good").length + " good)"],
        ["backend", run.backend], ["calibrations", run.n_calibrations],
        ["motion", run.motion_tracking ? `${run.motion_estimates} estimates` + (run.table_writes !== undefined ? `, ${run.table_writes} table writes` : "") : "off"],
        ["lost events", run.lost_events], ["gain", run.gain_source],
        ["detection", settings(run.detect_settings)], ["sorting", settings(run.sort_settings)],
    ];
    $("summary-table").innerHTML = summary.filter(([, v]) => v !== undefined)
        .map(([k, v]) => `<tr><td>${escape(k)}</td><td style="white-space:normal;max-width:420px">${escape(v)}</td></tr>`).join("");

    const groupColour = (g) => (g === "good" ? "#1a7f37" : g === "mua" ? "#d9822b" : "#8a94a0");

    // Probe map: contacts, then units; clicking selects the nearest unit.
    const nChannels = data.n_channels;
    let xs = [], ys = [];
    for (let c = 0; c < nChannels; ++c) { xs.push(positions[2 * c]); ys.push(positions[2 * c + 1]); }
    const [px0, px1] = Plot.extent(xs), [py0, py1] = Plot.extent(ys);
    const probeHeight = 460, probeWidth = Math.max(160, Math.min(360, 90 + (px1 - px0) * (probeHeight - 40) / Math.max(1, py1 - py0) * 3));
    let probeFrame = null;
    const maxAmplitude = Math.max(1, ...units.map((u) => u.amplitude || 0));
    function drawProbe() {
        const ctx = Plot.canvas($("probe-canvas"), probeWidth, probeHeight);
        probeFrame = Plot.frame(ctx, probeWidth, probeHeight, [px0 - 30, px1 + 30], [py0 - 20, py1 + 20], { x: "x (µm)", y: "depth (µm)" });
        ctx.fillStyle = "#c9d0d8";
        for (let c = 0; c < nChannels; ++c) ctx.fillRect(probeFrame.x(xs[c]) - 2, probeFrame.y(ys[c]) - 2, 4, 4);
        for (const u of units) {
            const r = 2 + 6 * Math.sqrt((u.amplitude || 0) / maxAmplitude);
            ctx.beginPath();
            ctx.arc(probeFrame.x(u.x_um), probeFrame.y(u.y_um), r, 0, 2 * Math.PI);
            ctx.fillStyle = groupColour(u.group);
            ctx.globalAlpha = u.cluster_id === selected ? 1 : 0.6;
            ctx.fill();
            if (u.cluster_id === selected) { ctx.strokeStyle = "#000"; ctx.lineWidth = 2; ctx.stroke(); }
        }
        ctx.globalAlpha = 1;
    }
    $("probe-canvas").addEventListener("click", (event) => {
        const rect = event.target.getBoundingClientRect();
        const mx = event.clientX - rect.left, my = event.clientY - rect.top;
        let best = null, bestDistance = 15 * 15;
        for (const u of units) {
            const d = (probeFrame.x(u.x_um) - mx) ** 2 + (probeFrame.y(u.y_um) - my) ** 2;
            if (d < bestDistance) { bestDistance = d; best = u; }
        }
        if (best) location.hash = "unit-" + best.cluster_id;
    });

    // Drift map: subsampled spikes, depth x time, coloured by log amplitude; the motion estimate on top.
    function drawDrift() {
        const width = Math.max(500, Math.min(1100, $("drift-map").clientWidth - 30)), height = 460;
        const ctx = Plot.canvas($("drift-canvas"), width, height);
        const t = Plot.f32(data.drift.time_s), depth = Plot.f32(data.drift.depth_um), amplitude = Plot.f32(data.drift.amplitude);
        const f = Plot.frame(ctx, width, height, [0, data.duration_s], [py0 - 20, py1 + 20], { x: "time (s)", y: "depth (µm)" });
        ctx.save(); // nothing (a motion block beyond the contacts, say) is drawn outside the frame
        ctx.beginPath();
        ctx.rect(f.box.left, f.box.top, f.box.right - f.box.left, f.box.bottom - f.box.top);
        ctx.clip();
        const sorted = Array.from(amplitude).filter((a) => a > 0).sort((a, b) => a - b);
        const low = Math.log(sorted[Math.floor(sorted.length * 0.05)] || 1), high = Math.log(sorted[Math.floor(sorted.length * 0.99)] || 2);
        // Bucket by colour so each colour is one fill style change, drawn weakest first.
        const levels = 16, buckets = Array.from({ length: levels }, () => []);
        for (let i = 0; i < t.length; ++i) {
            const level = Math.min(levels - 1, Math.max(0, Math.floor(((Math.log(amplitude[i] || 1) - low) / (high - low || 1)) * levels)));
            buckets[level].push(i);
        }
        buckets.forEach((list, level) => {
            ctx.fillStyle = Plot.colour(level / (levels - 1));
            for (const i of list) ctx.fillRect(f.x(t[i]) - 0.75, f.y(depth[i]) - 0.75, 1.5, 1.5);
        });
        let legend = `${t.length} of ${data.n_spikes} spikes (every ${data.drift.step}); colour: amplitude, log scale ` +
            `${Math.exp(low).toFixed(0)}–${Math.exp(high).toFixed(0)} µV`;
        if (data.motion) {
            const m = data.motion, times = Plot.f32(m.times_s), blockDepth = Plot.f32(m.block_depth_um), d = Plot.f32(m.displacement_um);
            ctx.strokeStyle = "#e0245e";
            ctx.lineWidth = 1.5;
            for (let b = 0; b < m.n_blocks; ++b) {
                ctx.beginPath();
                for (let e = 0; e < m.n_estimates; ++e) {
                    const x = f.x(times[e]), y = f.y(blockDepth[b] + d[e * m.n_blocks + b]);
                    if (e === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
                }
                ctx.stroke();
            }
            legend += `; red: motion estimate at ${m.n_blocks} depth block(s) (${m.n_estimates} estimates)`;
        }
        ctx.restore();
        $("drift-legend").textContent = legend;
    }

    // Units table: sortable by any column, filtered by words ("good", "ch 12") or comparisons ("snr>8").
    const columns = [
        ["cluster_id", "cluster", 0], ["group", "group"], ["n_spikes", "spikes", 0], ["firing_rate_hz", "rate (Hz)", 2],
        ["snr", "SNR", 1], ["isi_violation_ratio", "ISI viol.", 4], ["presence_ratio", "presence", 2],
        ["ch", "ch", 0], ["y_um", "depth (µm)", 0], ["amplitude", "amp. (µV)", 1],
    ];
    let sortKey = "cluster_id", sortDescending = false, selected = units.length ? units[0].cluster_id : null;
    function matches(u, query) {
        for (const word of query.toLowerCase().split(/\s*,\s*|\s+(?=[a-z])/).filter(Boolean)) {
            const comparison = word.match(/^([a-z_]+)\s*(<=|>=|<|>|=)\s*([-\d.]+)$/);
            if (comparison) {
                const key = { rate: "firing_rate_hz", isi: "isi_violation_ratio", depth: "y_um", spikes: "n_spikes", amp: "amplitude", cluster: "cluster_id" }[comparison[1]] || comparison[1];
                const v = u[key], limit = parseFloat(comparison[3]);
                if (typeof v !== "number") return false;
                const ok = { "<": v < limit, ">": v > limit, "<=": v <= limit, ">=": v >= limit, "=": v === limit }[comparison[2]];
                if (!ok) return false;
                continue;
            }
            const channel = word.match(/^ch\s*(\d+)$/);
            if (channel) { if (u.ch !== +channel[1]) return false; continue; }
            if (!String(u.group).startsWith(word) && String(u.cluster_id) !== word) return false;
        }
        return true;
    }
    function drawTable() {
        const query = $("units-filter").value;
        const shown = units.filter((u) => matches(u, query));
        shown.sort((a, b) => {
            const x = a[sortKey], y = b[sortKey];
            const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
            return sortDescending ? -order : order;
        });
        const head = "<tr>" + columns.map(([key, title]) => `<th data-key="${key}">${title}${key === sortKey ? (sortDescending ? " ▼" : " ▲") : ""}</th>`).join("") + "</tr>";
        const rows = shown.map((u) => `<tr class="unit-row${u.cluster_id === selected ? " selected" : ""}" data-cluster="${u.cluster_id}">` +
            columns.map(([key, , digits]) => key === "cluster_id" ? `<td><a href="#unit-${u.cluster_id}">${u.cluster_id}</a></td>`
                : key === "group" ? `<td class="${escape(u.group)}">${escape(u.group)}</td>` : `<td>${fixed(u[key], digits)}</td>`).join("") + "</tr>");
        $("units-table").innerHTML = head + rows.join("");
        $("units-count").textContent = `${shown.length} of ${units.length} shown`;
    }
    $("units-table").addEventListener("click", (event) => {
        const th = event.target.closest("th");
        if (th) {
            const key = th.dataset.key;
            sortDescending = key === sortKey ? !sortDescending : key !== "cluster_id" && key !== "group";
            sortKey = key;
            drawTable();
            return;
        }
        const row = event.target.closest("tr.unit-row");
        if (row) location.hash = "unit-" + row.dataset.cluster;
    });
    $("units-filter").addEventListener("input", drawTable);

    // One unit's panels, drawn when it is selected.
    function drawWaveform(u) {
        const samples = data.template_samples, w = Plot.f32(u.waveform), channels = u.channels;
        const width = 300, height = 300, ctx = Plot.canvas($("waveform-canvas"), width, height);
        if (!channels.length) return;
        const cx = channels.map((c) => positions[2 * c]), cy = channels.map((c) => positions[2 * c + 1]);
        const [x0, x1] = Plot.extent(cx), [y0, y1] = Plot.extent(cy);
        // Spacing between contacts sets each trace's box; amplitude is shared so channels compare.
        const dx = Math.max(16, ...cx.map((a) => Math.min(...cx.filter((b) => b !== a).map((b) => Math.abs(b - a)), Infinity)).filter(isFinite));
        const dy = Math.max(10, ...cy.map((a) => Math.min(...cy.filter((b) => b !== a).map((b) => Math.abs(b - a)), Infinity)).filter(isFinite));
        const scaleX = (width - 40) / (x1 - x0 + dx), scaleY = (height - 40) / (y1 - y0 + dy);
        const peak = Math.max(1e-9, ...Array.from(w, Math.abs));
        ctx.strokeStyle = groupColour(u.group);
        ctx.lineWidth = 1.3;
        ctx.fillStyle = "#5b6775";
        channels.forEach((c, k) => {
            const left = 20 + (cx[k] - x0) * scaleX, middle = height - 20 - (cy[k] - y0 + dy / 2) * scaleY;
            const boxWidth = dx * scaleX * 0.9, boxHeight = dy * scaleY * 1.6;
            ctx.beginPath();
            for (let s = 0; s < samples; ++s) {
                const x = left + (s / (samples - 1)) * boxWidth, y = middle - (w[k * samples + s] / peak) * boxHeight / 2;
                if (s === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
            }
            ctx.stroke();
            ctx.fillText(String(c), left, middle + boxHeight / 2 - 2);
        });
        ctx.fillText(`peak ${peak.toFixed(0)} µV`, width - 70, 12);
    }
    function drawIsi(u) {
        const counts = Plot.u32(u.isi), bin = data.isi_bin_ms, width = 300, height = 220;
        const ctx = Plot.canvas($("isi-canvas"), width, height);
        const f = Plot.frame(ctx, width, height, [0, counts.length * bin], [0, Math.max(1, ...counts)], { x: "ISI (ms)", y: "count" });
        ctx.fillStyle = "rgba(224,36,94,0.15)";
        ctx.fillRect(f.x(0), f.box.top, f.x(data.refractory_ms) - f.x(0), f.box.bottom - f.box.top);
        ctx.fillStyle = groupColour(u.group);
        counts.forEach((c, i) => ctx.fillRect(f.x(i * bin), f.y(c), Math.max(1, f.x(bin) - f.x(0) - 0.5), f.y(0) - f.y(c)));
    }
    function drawAmplitude(u) {
        const points = Plot.f32(u.amplitudes), width = 300, height = 220;
        const ctx = Plot.canvas($("amplitude-canvas"), width, height);
        const amplitudes = points.filter((_, i) => i % 2 === 1);
        const f = Plot.frame(ctx, width, height, [0, data.duration_s], [0, Math.max(1, ...amplitudes) * 1.05], { x: "time (s)", y: "amplitude (µV)" });
        ctx.fillStyle = groupColour(u.group);
        for (let i = 0; i + 1 < points.length; i += 2) ctx.fillRect(f.x(points[i]) - 1, f.y(points[i + 1]) - 1, 2, 2);
    }
    function drawRate(u) {
        const rate = Plot.f32(u.rate), width = 300, height = 220, binS = data.duration_s / rate.length;
        const ctx = Plot.canvas($("rate-canvas"), width, height);
        const f = Plot.frame(ctx, width, height, [0, data.duration_s], [0, Math.max(1, ...rate) * 1.05], { x: "time (s)", y: "rate (Hz)" });
        ctx.strokeStyle = groupColour(u.group);
        ctx.lineWidth = 1.5;
        ctx.beginPath();
        rate.forEach((r, i) => { ctx.lineTo(f.x(i * binS), f.y(r)); ctx.lineTo(f.x((i + 1) * binS), f.y(r)); });
        ctx.stroke();
    }
    function showUnit(cluster) {
        const u = byCluster.get(cluster);
        if (!u) return;
        selected = cluster;
        $("unit-title").textContent = `Unit: cluster ${u.cluster_id} (${u.group}), ${u.n_spikes} spikes, peak channel ${u.ch}`;
        $("unit-panel").dataset.cluster = String(cluster);
        drawWaveform(u);
        drawIsi(u);
        drawAmplitude(u);
        drawRate(u);
        const hidden = new Set(["waveform", "isi", "rate", "amplitudes", "channels"]);
        $("unit-metrics").innerHTML = Object.entries(u).filter(([k]) => !hidden.has(k))
            .map(([k, v]) => `<tr><td>${escape(k)}</td><td>${escape(typeof v === "number" ? +v.toPrecision(6) : v)}</td></tr>`).join("");
        drawTable();
        drawProbe();
    }
    window.addEventListener("hashchange", () => {
        const m = location.hash.match(/^#unit-(\d+)$/);
        if (m) showUnit(+m[1]);
    });

    // Ground truth: the accuracy table of spikeline compare.
    if (data.ground_truth) {
        const g = data.ground_truth;
        $("ground-truth").hidden = false;
        $("gt-bins").innerHTML = "<tr><th>SNR</th><th>units</th><th>well detected (≥ 0.8)</th><th>accuracy</th><th>recall</th><th>precision</th></tr>" +
            g.bins.map((b) => `<tr><td>${escape(b.snr)}</td><td>${b.n_units}</td><td>${b.n_well_detected}</td><td>${fixed(b.mean_accuracy, 3)}</td><td>${fixed(b.mean_recall, 3)}</td><td>${fixed(b.mean_precision, 3)}</td></tr>`).join("");
        $("gt-notes").textContent = `${g.n_sorted_units} sorted units: ${g.n_false_positive_units} false positive, ${g.n_redundant_units} redundant, ` +
            `${g.n_overmerged_units} over-merged; match window ±${g.window_samples} samples (${g.dir})`;
        $("gt-units").innerHTML = "<tr><th>GT unit</th><th>SNR</th><th>spikes</th><th>best cluster</th><th>accuracy</th><th>recall</th><th>precision</th></tr>" +
            g.units.map((u) => `<tr><td>${u.unit_id}</td><td>${fixed(u.snr, 1)}</td><td>${u.n_spikes}</td><td>${u.best_cluster >= 0 && byCluster.has(u.best_cluster) ? `<a href="#unit-${u.best_cluster}">${u.best_cluster}</a>` : u.best_cluster}</td>` +
                `<td>${fixed(u.accuracy, 3)}</td><td>${fixed(u.recall, 3)}</td><td>${fixed(u.precision, 3)}</td></tr>`).join("");
    }

    drawDrift();
    const initial = location.hash.match(/^#unit-(\d+)$/);
    if (initial && byCluster.has(+initial[1])) showUnit(+initial[1]);
    else if (units.length) showUnit(units[0].cluster_id);
    else { drawTable(); drawProbe(); }
    document.body.dataset.renderMs = performance.now().toFixed(0); // from navigation start, parse and draw included
    document.body.dataset.ready = "1";
})();
