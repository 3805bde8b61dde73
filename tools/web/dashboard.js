// SPDX-License-Identifier: MIT
// taskq dashboard: polls the JSON API of the taskq serve that served this
// page (GET stats, events/NAME, dead/NAME, cluster; docs/http.md) once a
// second and draws it with uPlot. Control buttons POST with the bearer token, which is
// kept in this tab's sessionStorage only and sent as an Authorization
// header (never in a URL or a cookie).
'use strict';
(() => {
	const TOKEN_KEY = 'taskq-token';
	const POLL_MS = 1000;
	const HISTORY_S = 300;       // the charts show the last five minutes
	const DEAD_REFRESH_MS = 10000; // the dead letters: every 10 s, or when they change,
	const DEAD_MIN_MS = 2000;      // but at most every 2 s (a button's action: at once)
	const EVENTS_SHOWN = 50;

	// What the page knows, for the console (and the browser test).
	const dash = { control: false, polls: 0, queues: {}, lastError: '', cluster: null };
	window.taskqDashboard = dash;

	const $ = (id) => document.getElementById(id);
	const el = (tag, attrs, ...kids) => {
		const e = document.createElement(tag);
		for (const [k, v] of Object.entries(attrs || {})) {
			if (k === 'class') e.className = v;
			else if (k === 'text') e.textContent = v;
			else if (k.startsWith('data-')) e.setAttribute(k, v);
			else e[k] = v;
		}
		for (const c of kids) if (c != null) e.append(c);
		return e;
	};

	// ------------------------------------------------------------ numbers
	const fmtInt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
	const fmtRate = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
	const fmtDec = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
	const int = (v) => fmtInt.format(v);
	const rate = (v) => fmtRate.format(v);
	// A duration in seconds with a unit that suits it.
	const dur = (s) => {
		if (s == null || s < 0) return '–';
		if (s === 0) return '0';
		if (s < 1e-3) return fmtDec.format(s * 1e6) + ' µs';
		if (s < 1) return fmtDec.format(s * 1e3) + ' ms';
		if (s < 120) return fmtDec.format(s) + ' s';
		if (s < 7200) return fmtDec.format(s / 60) + ' min';
		return fmtDec.format(s / 3600) + ' h';
	};
	const ago = (s) => (s < 1 ? 'now' : dur(s) + ' ago');

	// -------------------------------------------------------------- token
	const token = () => sessionStorage.getItem(TOKEN_KEY) || '';
	const say = (text, bad) => {
		const m = $('message');
		m.textContent = text;
		m.className = 'message' + (bad ? ' bad' : '');
	};
	const canControl = () => dash.control && token() !== '';
	const showMode = () => {
		const auth = $('auth');
		if (!dash.control) {
			$('mode').textContent = 'Read-only: this server has no token configured, so control is off.';
			$('token').hidden = $('token-use').hidden = $('token-forget').hidden = true;
		} else if (!token()) {
			$('mode').textContent = 'Enter the token to use the buttons:';
			$('token').hidden = $('token-use').hidden = false;
			$('token-forget').hidden = true;
		} else {
			$('mode').textContent = 'Control on (token kept in this tab only).';
			$('token').hidden = $('token-use').hidden = true;
			$('token-forget').hidden = false;
		}
		auth.dataset.mode = !dash.control ? 'read-only' : token() ? 'control' : 'locked';
		for (const b of document.querySelectorAll('button[data-action]')) b.disabled = !canControl();
	};
	$('auth').addEventListener('submit', (ev) => {
		ev.preventDefault();
		const t = $('token').value.trim();
		$('token').value = '';
		if (t) sessionStorage.setItem(TOKEN_KEY, t);
		showMode();
	});
	$('token-forget').addEventListener('click', () => {
		sessionStorage.removeItem(TOKEN_KEY);
		showMode();
	});

	// POST path with the token; says what happened.
	const post = async (path, what) => {
		let r, body = {};
		try {
			r = await fetch(path, { method: 'POST', headers: { Authorization: 'Bearer ' + token() }, cache: 'no-store' });
			body = await r.json().catch(() => ({}));
		} catch (e) {
			say(what + ': ' + e.message, true);
			return false;
		}
		if (r.status === 401) {
			sessionStorage.removeItem(TOKEN_KEY);
			showMode();
		}
		if (!r.ok) {
			say(what + ': ' + (body.error || 'HTTP ' + r.status), true);
			return false;
		}
		say(what + ': done' + (body.tasks != null ? ' (' + int(body.tasks) + ' task' + (body.tasks === 1 ? '' : 's') + ')' : '') + '.');
		return true;
	};

	// ------------------------------------------------------------- charts
	const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
	const chartDefs = [
		{ key: 'rates', title: 'Tasks per second', unit: 'tasks/s', fmt: rate,
		  series: [['pushed', '--s1'], ['done', '--s2'], ['failed', '--s3']] },
		{ key: 'counts', title: 'Tasks in the queue', unit: 'tasks', fmt: int,
		  series: [['pending', '--s1'], ['in progress', '--s2'], ['delayed', '--s5'], ['dead', '--s3']] },
		{ key: 'latency', title: 'Latency percentiles', unit: '', fmt: dur,
		  series: [['wait p50', '--s6'], ['wait p99', '--s1'], ['processing p50', '--s4'], ['processing p99', '--s3']] },
	];
	const makeChart = (def, box, data) => {
		const fg = css('--muted'), grid = css('--line');
		const width = Math.max(200, box.clientWidth || 300);
		const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
		return new uPlot({
			width, height: 180,
			legend: { live: false },
			cursor: { drag: { x: false, y: false } },
			scales: { x: { time: true }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
			axes: [axis, Object.assign({}, axis, { size: 70, values: (u, vals) => vals.map((v) => def.fmt(v) + (def.unit && def.unit !== 'tasks' ? '' : '')) })],
			series: [{}].concat(def.series.map(([label, color]) => ({
				label, stroke: css(color), width: 2, value: (u, v) => (v == null ? '–' : def.fmt(v) + (def.unit ? ' ' + def.unit : '')),
			}))),
		}, data, box);
	};

	// ------------------------------------------------------------- queues
	const CARDS = [
		['ready', 'Pending', 'tasks'], ['leased', 'In progress', 'tasks'], ['delayed', 'Delayed', 'tasks'],
		['dead', 'Dead', 'tasks'], ['pushed_rate', 'Pushed', 'tasks/s'], ['done_rate', 'Done', 'tasks/s'],
		['failed_rate', 'Failed', 'tasks/s'], ['pushed', 'Pushed in all', 'tasks'], ['acked', 'Done in all', 'tasks'],
		['processes', 'Processes', ''], ['wait_p99', 'Wait p99', ''], ['processing_p99', 'Processing p99', ''],
	];
	const ACTIONS = [['pause', 'Pause'], ['resume', 'Resume'], ['drain', 'Drain'], ['stop', 'Stop']];

	const addQueue = (name) => {
		const q = {
			name, eventsAfter: 0, lastDeadKey: '', deadAt: 0, prev: null, events: [], deadTasks: [],
			data: { t: [] }, charts: {}, cards: {},
		};
		for (const d of chartDefs) q.data[d.key] = d.series.map(() => []);
		const sec = el('section', { class: 'queue', 'data-queue': name });
		const badge = el('span', { class: 'badge', text: '…' });
		const controls = el('div', { class: 'controls' });
		for (const [verb, label] of ACTIONS) {
			const b = el('button', { type: 'button', text: label, 'data-action': verb, class: verb === 'stop' ? 'danger' : '' });
			b.disabled = !canControl();
			b.addEventListener('click', () =>
				post('queues/' + encodeURIComponent(name) + '/' + verb, label + ' ' + name).then(poll));
			controls.append(b);
		}
		sec.append(el('div', { class: 'qhead' }, el('h2', { text: name }), badge, controls));
		const cards = el('div', { class: 'cards' });
		for (const [k, label, unit] of CARDS) {
			const v = el('span', { class: 'value', 'data-k': k, text: '–' });
			q.cards[k] = { v, card: el('div', { class: 'card' }, el('span', { class: 'label', text: label }), v, unit ? el('span', { class: 'unit', text: unit }) : null) };
			cards.append(q.cards[k].card);
		}
		sec.append(cards);
		const charts = el('div', { class: 'charts' });
		q.boxes = {};
		for (const d of chartDefs) {
			const box = el('div', { class: 'chart', 'data-chart': d.key });
			charts.append(el('div', {}, el('h3', { text: d.title + (d.unit ? ' (' + d.unit + ')' : '') }), box));
			q.boxes[d.key] = box;
		}
		sec.append(charts);
		// processes, dead letters, events
		q.procBody = el('tbody');
		const procs = el('div', {}, el('h3', { text: 'Processes' }),
			el('table', { 'data-table': 'processes' },
				el('thead', {}, el('tr', {}, ...['role', 'pid', 'state', 'holds', 'done/s', 'last seen'].map((h, i) => el('th', { text: h, class: i === 1 || i === 3 || i === 4 ? 'num' : '' })))),
				q.procBody));
		q.deadBody = el('tbody');
		q.deadCount = el('span', { class: 'count' });
		const kickAll = el('button', { type: 'button', text: 'Kick all', 'data-action': 'kick-all' });
		const purgeAll = el('button', { type: 'button', text: 'Purge all', 'data-action': 'purge-all', class: 'danger' });
		kickAll.addEventListener('click', () => deadAction(q, 'all', 'kick'));
		let armed = 0;
		purgeAll.addEventListener('click', () => {
			if (Date.now() - armed > 4000) { // a second click within 4 s confirms
				armed = Date.now();
				say('Click "Purge all" again to delete every dead task of ' + name + '.');
				return;
			}
			armed = 0;
			deadAction(q, 'all', 'purge');
		});
		kickAll.disabled = purgeAll.disabled = !canControl();
		const dead = el('div', { class: 'deadbox' }, el('div', { class: 'deadhead' }, el('h3', { text: 'Dead letters ' }, q.deadCount), kickAll, purgeAll),
			el('div', { class: 'scroll' }, el('table', { 'data-table': 'dead' },
				el('thead', {}, el('tr', {}, ...['id', 'tries', 'reason', 'dead for', 'payload', ''].map((h, i) => el('th', { text: h, class: i < 2 ? 'num' : '' })))),
				q.deadBody)));
		q.eventList = el('ol', { class: 'events', 'data-list': 'events' });
		const events = el('div', {}, el('h3', { text: 'Recent events' }), q.eventList);
		sec.append(el('div', { class: 'tables' }, procs, events));
		sec.append(dead);
		$('queues').append(sec);
		q.section = sec;
		q.badge = badge;
		// charts once laid out
		for (const d of chartDefs) q.charts[d.key] = makeChart(d, q.boxes[d.key], [q.data.t].concat(q.data[d.key]));
		// each chart as wide as its box, whatever changes the box (the
		// window, a scroll bar appearing, the phone turned)
		const fit = new ResizeObserver(() => {
			for (const d of chartDefs) {
				const w = q.boxes[d.key].clientWidth, c = q.charts[d.key];
				if (w > 0 && Math.abs(w - c.width) > 1) c.setSize({ width: w, height: c.height });
			}
		});
		for (const d of chartDefs) fit.observe(q.boxes[d.key]);
		dash.queues[name] = q;
		return q;
	};

	const deadAction = (q, id, verb) =>
		post('queues/' + encodeURIComponent(q.name) + '/dead/' + id + '/' + verb,
			(verb === 'kick' ? 'Kick' : 'Purge') + ' ' + (id === 'all' ? 'every dead task' : 'task ' + id) + ' of ' + q.name)
			.then(() => { q.deadAt = 0; return poll(); });

	const setCard = (q, k, text, alert) => {
		const c = q.cards[k];
		c.v.textContent = text;
		c.card.classList.toggle('alert', !!alert);
	};

	const role = (c) => (c.pushed > 0 && c.taken > 0 ? 'producer, worker' : c.taken > 0 ? 'worker' : c.pushed > 0 ? 'producer' : 'attached');

	const update = (q, s, now) => {
		q.stats = s;
		q.badge.textContent = s.state;
		q.badge.className = 'badge ' + s.state;
		const t = s.totals;
		let failedRate = 0;
		if (q.prev) {
			const dt = (now - q.prev.at) / 1000;
			if (dt > 0) failedRate = Math.max(0, (t.failed - q.prev.failed) / dt);
		}
		q.prev = { at: now, failed: t.failed };
		const lw = s.latency_seconds.queue_wait, lp = s.latency_seconds.processing;
		setCard(q, 'ready', int(s.ready));
		setCard(q, 'leased', int(s.leased));
		setCard(q, 'delayed', int(s.delayed));
		setCard(q, 'dead', int(s.dead), s.dead_full);
		setCard(q, 'pushed_rate', rate(s.rates.pushed_per_second['1s']));
		setCard(q, 'done_rate', rate(s.rates.done_per_second['1s']));
		setCard(q, 'failed_rate', rate(failedRate), failedRate > 0);
		setCard(q, 'pushed', int(t.pushed));
		setCard(q, 'acked', int(t.acked));
		setCard(q, 'processes', int(s.processes));
		setCard(q, 'wait_p99', dur(lw.p99));
		setCard(q, 'processing_p99', dur(lp.p99));
		// chart points: one per poll, the last HISTORY_S seconds
		const d = q.data;
		d.t.push(now / 1000);
		const add = (key, vals) => vals.forEach((v, i) => d[key][i].push(v));
		add('rates', [s.rates.pushed_per_second['1s'], s.rates.done_per_second['1s'], failedRate]);
		add('counts', [s.ready, s.leased, s.delayed, s.dead]);
		add('latency', [lw.p50, lw.p99, lp.p50, lp.p99]);
		while (d.t.length && d.t[0] < now / 1000 - HISTORY_S) {
			d.t.shift();
			for (const def of chartDefs) d[def.key].forEach((a) => a.shift());
		}
		for (const def of chartDefs) q.charts[def.key].setData([d.t].concat(d[def.key]));
		// processes
		q.procBody.replaceChildren(...(s.process_list || []).map((p) => el('tr', {},
			el('td', { text: role(p.counters) }), el('td', { class: 'num', text: String(p.pid) }),
			el('td', { text: p.state }), el('td', { class: 'num', text: int(p.in_progress) }),
			el('td', { class: 'num', text: rate(p.done_per_second) }), el('td', { text: ago(p.last_seen_seconds_ago) }))));
		if (!(s.process_list || []).length)
			q.procBody.replaceChildren(el('tr', {}, el('td', { class: 'empty', colSpan: 6, text: 'no process attached' })));
	};

	const showDead = (q, list) => {
		q.deadTasks = list.tasks;
		q.deadCount.textContent = '(' + int(list.dead) + (list.dead > list.tasks.length ? ', the oldest ' + int(list.tasks.length) + ' shown' : '') + ')';
		const rows = list.tasks.map((t) => {
			const kick = el('button', { type: 'button', text: 'Kick', 'data-action': 'kick', 'data-id': t.id });
			const purge = el('button', { type: 'button', text: 'Purge', 'data-action': 'purge', 'data-id': t.id, class: 'danger' });
			kick.disabled = purge.disabled = !canControl();
			kick.addEventListener('click', () => deadAction(q, t.id, 'kick'));
			purge.addEventListener('click', () => deadAction(q, t.id, 'purge'));
			let payload = t.value != null ? String(t.value) : t.data != null ? (typeof t.data === 'string' ? t.data : JSON.stringify(t.data)) : t.data_base64 != null ? 'base64:' + t.data_base64 : '';
			if (payload.length > 60) payload = payload.slice(0, 60) + '…';
			return el('tr', { 'data-id': t.id },
				el('td', { class: 'num', text: String(t.id) }), el('td', { class: 'num', text: int(t.attempts) }),
				el('td', { class: 'reason', text: t.last_message || '(no message) error ' + t.last_error }),
				el('td', { class: 'age', text: dur(t.dead_seconds) }), el('td', { class: 'payload', text: payload, title: payload }),
				el('td', { class: 'buttons' }, kick, ' ', purge));
		});
		q.deadBody.replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { class: 'empty', colSpan: 6, text: 'none' }))]));
	};

	const EVENT_WORDS = { task_dead: 'task dead', process_died: 'process died', dead_full: 'dead-letter area full' };
	const eventText = (e) => {
		const parts = [];
		for (const k of ['id', 'attempts', 'dead_pid', 'tasks_returned', 'leases', 'tasks', 'state', 'capacity', 'dead_capacity'])
			if (e[k] != null && !(k === 'id' && (e.event === 'dead_kicked' || e.event === 'dead_purged') && e.id === 0)) parts.push(k.replaceAll('_', ' ') + ' ' + e[k]);
		if (e.message) parts.push('“' + e.message + '”');
		return parts.join(', ');
	};
	const showEvents = (q, list) => {
		if (!list.events.length) return;
		q.eventsAfter = list.last;
		q.events = q.events.concat(list.events).slice(-EVENTS_SHOWN);
		q.eventList.replaceChildren(...q.events.slice().reverse().map((e) => el('li', { class: e.event === 'dead_full' || e.event === 'process_died' ? 'warn' : '' },
			el('span', { class: 't', text: new Date(e.time).toLocaleTimeString() }),
			el('b', { text: (EVENT_WORDS[e.event] || e.event.replaceAll('_', ' ')) + ' ' }),
			document.createTextNode(eventText(e) + ' (pid ' + e.pid + ')'))));
	};

	// --------------------------------------------------------------- poll
	const getJSON = async (path) => {
		const r = await fetch(path, { cache: 'no-store' });
		const body = await r.json();
		if (!r.ok) throw new Error(body.error || 'HTTP ' + r.status);
		return body;
	};

	// Every machine's bridges (GET cluster, when healthz says serve has
	// --nats): a row each and the totals; else the section stays hidden.
	const MACHINE_COLS = ['ready', 'leased', 'delayed', 'dead', 'pushed', 'acked', 'done_per_s', 'published', 'imported', 'publish_errors'];
	const numCell = (v, k) => el('td', { class: 'num', text: typeof v !== 'number' ? '–' : k === 'done_per_s' ? rate(v) : int(v) });
	const showCluster = async (on) => {
		if (!on) {
			dash.cluster = 'off';
			$('machines').hidden = true;
			return;
		}
		const r = await fetch('cluster', { cache: 'no-store' });
		const body = await r.json();
		if (r.status === 404) {
			dash.cluster = 'off';
			$('machines').hidden = true;
			return;
		}
		$('machines').hidden = false;
		if (!r.ok) {
			dash.cluster = 'unavailable';
			$('machines-note').textContent = body.error || 'HTTP ' + r.status;
			return;
		}
		const snap = body.snapshot;
		dash.cluster = snap;
		$('machines-note').textContent = 'stream ' + body.stream + ', ' + ago(body.age_seconds);
		const bridges = snap.bridges || [];
		const rows = bridges.map((b) => el('tr', {},
			el('td', { text: b.host }), el('td', { text: b.queue }), el('td', { text: b.mode }),
			el('td', {}, el('span', { class: 'badge ' + (b.run_state || ''), text: b.run_state || '?' })),
			...MACHINE_COLS.map((k) => numCell(b[k], k))));
		// the snapshot's totals; the bridges' own counters summed here
		const tot = snap.totals || {};
		const total = (k) => (typeof tot[k] === 'number' ? tot[k] : bridges.reduce((n, b) => n + (typeof b[k] === 'number' ? b[k] : 0), 0));
		rows.push(el('tr', { class: 'total' }, el('td', { text: 'total', colSpan: 4 }), ...MACHINE_COLS.map((k) => numCell(total(k), k))));
		$('machines-rows').replaceChildren(...rows);
	};

	let polling = null;
	const pollOnce = async () => {
		const now = Date.now();
		const [health, stats] = await Promise.all([getJSON('healthz'), getJSON('stats')]);
		await showCluster(health.cluster);
		if (dash.control !== health.control) {
			dash.control = health.control;
			showMode();
		}
		for (const s of stats.queues) {
			const q = dash.queues[s.name] || addQueue(s.name);
			update(q, s, now);
			const ev = await getJSON('events/' + encodeURIComponent(s.name) + '?after=' + q.eventsAfter);
			showEvents(q, ev);
			// the dead list opens the queue as a worker: only when it changed
			const key = s.dead + '/' + s.totals.dead + '/' + (ev.events.length ? ev.last : '');
			if ((key !== q.lastDeadKey && now - q.deadAt >= DEAD_MIN_MS) || now - q.deadAt > DEAD_REFRESH_MS) {
				showDead(q, await getJSON('dead/' + encodeURIComponent(s.name)));
				q.lastDeadKey = key;
				q.deadAt = now;
			}
		}
		dash.polls++;
		dash.lastPoll = now;
		$('conn').textContent = 'updated ' + new Date(now).toLocaleTimeString();
		$('conn').className = 'conn';
	};
	const poll = () => {
		if (!polling)
			polling = pollOnce().catch((e) => {
				dash.lastError = e.message;
				$('conn').textContent = 'cannot reach the server: ' + e.message;
				$('conn').className = 'conn bad';
			}).finally(() => { polling = null; });
		return polling;
	};

	// Charts follow the colour scheme (their widths follow their boxes).
	const relayout = () => {
		for (const q of Object.values(dash.queues))
			for (const d of chartDefs) {
				q.charts[d.key].destroy();
				q.charts[d.key] = makeChart(d, q.boxes[d.key], [q.data.t].concat(q.data[d.key]));
			}
	};
	window.matchMedia('(prefers-color-scheme: dark)').addEventListener('change', relayout);

	showMode();
	poll();
	setInterval(poll, POLL_MS);
})();
