/* The pools dashboard, live: polls the JSON endpoint and redraws what the server computed.
 *
 * Every value from the server is put in with textContent or setAttribute, never as markup:
 * application names, user names and errors come from outside and may hold anything.
 */
"use strict";
(function () {
    const SVG = "http://www.w3.org/2000/svg";
    // Data older than this many intervals is shown as stale.
    const STALE_INTERVALS = 3;
    const STORAGE_KEY = "django_pool.dashboard.interval";

    const root = document.getElementById("pool-dashboard");
    if (!root) {
        return;
    }
    const status = document.getElementById("pool-refresh-status");
    const pauseButton = document.getElementById("pool-pause");
    const intervalSelect = document.getElementById("pool-interval");
    const pollUrl = root.dataset.pollUrl;

    let interval = Number(root.dataset.interval) || 5;
    let paused = false;
    let timer = null;
    let lastSuccess = Date.now();
    let lastUpdated = status.textContent.replace(/^Updated /, "");
    let failure = null;
    // Cards are drawn by the server: a pool that appeared or went needs a reload.
    let reloadNeeded = false;

    function setStatus(state, text) {
        status.dataset.state = state;
        status.textContent = text;
    }

    function showStatus() {
        if (paused) {
            setStatus("paused", "Paused; updated " + lastUpdated);
        } else if (failure) {
            setStatus("failed", "Update failed (" + failure + "); last updated " + lastUpdated);
        } else if (Date.now() - lastSuccess > STALE_INTERVALS * interval * 1000) {
            setStatus("stale", "Stale: last updated " + lastUpdated);
        } else {
            const note = reloadNeeded ? " (pools changed: reload the page)" : "";
            setStatus("fresh", "Updated " + lastUpdated + note);
        }
    }

    function schedule() {
        clearTimeout(timer);
        if (!paused) {
            timer = setTimeout(poll, interval * 1000);
        }
    }

    async function poll() {
        // A hidden tab costs the server nothing; it catches up when shown again.
        if (document.hidden) {
            schedule();
            return;
        }
        const controller = new AbortController();
        const abort = setTimeout(() => controller.abort(), Math.max(interval, 5) * 1000);
        try {
            const response = await fetch(withChartsKeys(pollUrl), {
                headers: {Accept: "application/json"},
                credentials: "same-origin",
                signal: controller.signal,
            });
            if (!response.ok) {
                throw new Error("HTTP " + response.status);
            }
            // A lapsed session redirects to the login page: HTML, not JSON.
            if (!(response.headers.get("Content-Type") || "").includes("application/json")) {
                throw new Error("not logged in?");
            }
            redraw(await response.json());
            lastSuccess = Date.now();
            failure = null;
        } catch (error) {
            failure = error.name === "AbortError" ? "timed out" : error.message;
        } finally {
            clearTimeout(abort);
        }
        showStatus();
        schedule();
    }

    function withChartsKeys(url) {
        // The charts this page draws: the server leaves out those that have not changed.
        const keys = [];
        for (const section of root.querySelectorAll("section.pool-card")) {
            if (section.dataset.chartsKey) {
                keys.push(section.dataset.chartsKey);
            }
        }
        if (!keys.length) {
            return url;
        }
        return url + (url.includes("?") ? "&" : "?") + "have=" + encodeURIComponent(keys.join(","));
    }

    function redraw(data) {
        lastUpdated = data.updated;
        const sections = new Map();
        for (const section of root.querySelectorAll("section.pool-card")) {
            sections.set(section.dataset.alias, section);
        }
        let changed = data.cards.length !== sections.size;
        for (const card of data.cards) {
            const section = sections.get(card.alias);
            if (section) {
                redrawCard(section, card, data.chart_box);
            } else {
                changed = true;
            }
        }
        reloadNeeded = changed;
        const processes = root.querySelector('table[data-table="processes"]');
        if (processes && data.processes) {
            fillTable(processes, data.processes);
        }
        const servers = root.querySelector("[data-servers]");
        if (servers && data.servers) {
            redrawServers(servers, data.servers);
        }
    }

    function redrawCard(section, card, box) {
        for (const element of section.querySelectorAll("[data-field]")) {
            const value = card.fields[element.dataset.field];
            if (value !== undefined) {
                element.textContent = value;
            }
        }
        const health = section.querySelector(".pool-health");
        health.dataset.status = card.health.status;
        health.textContent = card.health.status;
        fillList(section.querySelector('[data-list="reasons"]'), card.health.reasons);
        fillList(section.querySelector('[data-list="recommendations"]'), card.health.recommendations);
        section.querySelector(".pool-server").dataset.server = card.server.text;
        for (const rect of section.querySelectorAll("rect[data-gauge]")) {
            const gauge = card.gauges[rect.dataset.gauge];
            rect.setAttribute("x", gauge.x);
            rect.setAttribute("width", gauge.width);
        }
        for (const svg of section.querySelectorAll("svg[data-chart]")) {
            const chart = card.charts[svg.dataset.chart];
            if (chart) {
                redrawChart(svg, chart, box);
            }
        }
        if (Object.keys(card.charts).length) {
            section.dataset.chartsKey = card.charts_key;
        }
    }

    function redrawChart(svg, chart, box) {
        for (const series of chart.series) {
            const line = svg.querySelector('polyline[data-series="' + series.key + '"]');
            if (line) {
                line.setAttribute("points", series.points);
            }
        }
        const yAxis = svg.querySelector('[data-axis="y"]');
        yAxis.replaceChildren();
        for (const tick of chart.y_ticks) {
            yAxis.append(
                svgElement("line", {x1: box.left, x2: box.right, y1: tick.y, y2: tick.y}),
                svgText(tick.label, {x: box.left - 4, y: tick.y, dy: 3, "text-anchor": "end"}),
            );
        }
        const xAxis = svg.querySelector('[data-axis="x"]');
        xAxis.replaceChildren();
        for (const tick of chart.x_ticks) {
            xAxis.append(
                svgElement("line", {x1: tick.x, x2: tick.x, y1: box.top, y2: box.bottom}),
                svgText(tick.label, {x: tick.x, y: box.height, dy: -4, "text-anchor": tick.anchor}),
            );
        }
        svg.querySelector("[data-empty]").setAttribute("visibility", chart.empty ? "visible" : "hidden");
        const latest = svg.closest("figure").querySelector("[data-chart-latest]");
        if (latest) {
            latest.textContent = chart.latest;
        }
    }

    function redrawServers(container, servers) {
        // Rebuilt as the template builds it; the texts go in as text.
        container.replaceChildren();
        for (const server of servers) {
            const part = element("div", "pool-server-section");
            const title = element("h3", "", server.where + " ");
            title.append(element("span", "pool-quiet", "used by " + server.aliases.join(", ")));
            part.append(title);
            if (server.error) {
                part.append(element("p", "pool-error", "Could not read the server's connections: " + server.error));
            } else {
                part.append(element("p", "", server.summary));
                const capacity = element("ul", "pool-capacity");
                for (const line of server.capacity) {
                    const item = element("li");
                    item.append(badge(line.status, line.status), " " + line.text);
                    capacity.append(item);
                }
                const wrap = element("div", "pool-table-wrap");
                const table = element("table", "pool-table");
                table.dataset.table = "server";
                table.append(element("thead"), element("tbody"));
                fillTable(table, server.table);
                wrap.append(table);
                part.append(capacity, wrap);
            }
            container.append(part);
        }
    }

    function fillTable(table, data) {
        const head = element("tr");
        for (const column of data.columns) {
            const th = element("th", "", column);
            th.scope = "col";
            head.append(th);
        }
        table.tHead.replaceChildren(head);
        const body = table.tBodies[0];
        body.replaceChildren();
        for (const row of data.rows) {
            const tr = element("tr", row.me ? "pool-me" : row.flagged ? "pool-flagged" : "");
            for (const cell of row.cells) {
                const td = element("td", cell.numeric ? "pool-num" : "");
                td.append(cell.status ? badge(cell.status, cell.text) : cell.text);
                tr.append(td);
            }
            body.append(tr);
        }
        if (!data.rows.length) {
            const td = element("td", "", "none");
            td.colSpan = data.columns.length;
            body.append(element("tr"));
            body.lastChild.append(td);
        }
    }

    function fillList(list, items) {
        list.replaceChildren(...items.map((item) => element("li", "", item)));
    }

    function badge(status, text) {
        const span = element("span", "pool-health", text);
        span.dataset.status = status;
        return span;
    }

    function element(tag, className, text) {
        const node = document.createElement(tag);
        if (className) {
            node.className = className;
        }
        if (text !== undefined) {
            node.textContent = text;
        }
        return node;
    }

    function svgElement(tag, attributes) {
        const node = document.createElementNS(SVG, tag);
        for (const [name, value] of Object.entries(attributes)) {
            node.setAttribute(name, value);
        }
        return node;
    }

    function svgText(text, attributes) {
        const node = svgElement("text", attributes);
        node.textContent = text;
        return node;
    }

    function setPaused(value) {
        paused = value;
        pauseButton.textContent = paused ? "Resume" : "Pause";
        pauseButton.setAttribute("aria-pressed", String(paused));
        showStatus();
        if (paused) {
            clearTimeout(timer);
        } else {
            poll();
        }
    }

    function changeInterval(seconds) {
        interval = seconds;
        root.dataset.interval = String(seconds);
        showStatus();
        schedule();
    }

    pauseButton.addEventListener("click", () => setPaused(!paused));

    let stored = null;
    try {
        stored = Number(localStorage.getItem(STORAGE_KEY));
    } catch (error) {
        // Storage may be off (private mode, a sandbox): the default interval then.
    }
    if ([...intervalSelect.options].some((option) => Number(option.value) === stored)) {
        intervalSelect.value = String(stored);
        interval = stored;
        root.dataset.interval = String(stored);
    }
    intervalSelect.addEventListener("change", () => {
        const seconds = Number(intervalSelect.value);
        try {
            localStorage.setItem(STORAGE_KEY, String(seconds));
        } catch (error) {
            // Storage may be off (private mode): the choice then lasts this page only.
        }
        changeInterval(seconds);
    });

    for (const form of root.querySelectorAll("form[data-action]")) {
        form.addEventListener("submit", (event) => {
            if (!window.confirm(form.dataset.confirm)) {
                event.preventDefault();
            }
        });
    }

    // The status turns stale between polls too, when one hangs.
    window.setInterval(showStatus, 1000);
    document.addEventListener("visibilitychange", () => {
        if (!document.hidden && !paused) {
            poll();
        }
    });
    schedule();
})();
