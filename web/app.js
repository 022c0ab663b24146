// The demo page: camera → WebRtcEndpoint → filter → same endpoint → back to the page,
// over the Kurento Protocol like a Kurento tutorial app.
import { KurentoClient } from './kurento.js';

const $ = (id) => document.getElementById(id);
const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/kurento`;
let session = null;

function status(text, cls = '') {
  $('status').textContent = text;
  $('status').className = cls;
}

async function loadFilters(select) {
  const res = await fetch('/api/filters');
  const body = await res.json();
  const names = new Set([...(body.builtin || []), ...body.filters.map((f) => f.name)]);
  const sel = $('filter');
  const previous = select || sel.value;
  sel.innerHTML = '';
  const sorted = [...names].sort();
  for (const name of sorted) {
    const opt = document.createElement('option');
    opt.value = name;
    opt.textContent = name;
    sel.appendChild(opt);
  }
  const preferred = [previous, 'platedetector', 'grayscale'].find((n) => names.has(n));
  if (preferred) sel.value = preferred;
  showRegion();
}

// The plate filter reads the plate formats of the country chosen (all of them for "any").
function showRegion() {
  $('region-choice').hidden = $('filter').value !== 'platedetector';
}

function addEvent(list, html, limit = 50) {
  const li = document.createElement('li');
  li.innerHTML = html;
  list.prepend(li);
  while (list.children.length > limit) list.lastChild.remove();
  return li;
}

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function onFilterEvent(data, type) {
  const time = new Date(Number(data.timestampMillis) || Date.now()).toLocaleTimeString();
  if (type === 'PlateDetected') {
    const conf = data.confidence != null ? `${Math.round(data.confidence * 100)}%` : '';
    const thumb = data.box ? thumbnail(data.box) : '';
    // A correction (a plate first read from afar) replaces the reading it corrects.
    const was = data.corrects ? [...$('plates').children].find((li) => li.dataset.plate === data.corrects) : null;
    if (was) was.remove();
    const note = data.corrects ? `<span class="muted">was ${escape(data.corrects)}</span>` : '';
    const region = data.region && data.region !== 'auto' ? `<span class="region">${escape(data.region)}</span>` : '';
    const li = addEvent($('plates'), `${thumb}<span class="plate">${escape(data.plate)}</span>${region}${note}<span>${conf}</span><time>${time}</time>`);
    li.dataset.plate = data.plate;
  } else if (!['MediaFlowInStateChanged', 'MediaFlowOutStateChanged', 'ElementConnected'].includes(type)) {
    const detail = type === 'Error' ? data.description : JSON.stringify(data, (k, v) => (['source', 'tags', 'timestamp', 'timestampMillis', 'type'].includes(k) ? undefined : v));
    addEvent($('events'), `<strong>${escape(type)}</strong> <span class="muted">${escape(detail).slice(0, 200)}</span><time>${time}</time>`);
  }
}

// A crop of the camera's picture at the plate's box: the processed video is the same picture
// (the box is in its pixels) but may have none yet, or a black one, when the first plate comes.
function thumbnail(box) {
  try {
    const v = $('local');
    if (v.readyState < 2 || !v.videoWidth) return '';
    const processed = $('remote').videoWidth;
    const k = processed ? v.videoWidth / processed : 1;
    const c = document.createElement('canvas');
    const w = Math.max(1, box.width || box.w || 0);
    const h = Math.max(1, box.height || box.h || 0);
    c.width = Math.min(160, w);
    c.height = Math.round(c.width * h / w);
    c.getContext('2d').drawImage(v, box.x * k, box.y * k, w * k, h * k, 0, 0, c.width, c.height);
    return `<img alt="" src="${c.toDataURL('image/jpeg', 0.7)}">`;
  } catch (e) {
    return '';
  }
}

async function start() {
  $('start').disabled = true;
  $('plates').innerHTML = '';
  $('events').innerHTML = '';
  const filter = $('filter').value;
  status('Connecting…');
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
    $('local').srcObject = stream;
    const client = await new KurentoClient(wsUrl).open();
    const pipeline = await client.create('MediaPipeline');
    const endpoint = await client.create('WebRtcEndpoint', { mediaPipeline: pipeline });
    const config = JSON.stringify({ region: $('region').value });
    const element = filter === 'platedetector'
      ? await client.create('platedetector.PlateDetectorFilter', { mediaPipeline: pipeline, config })
      : await client.create('prism.WasmFilter', { mediaPipeline: pipeline, filter });
    const pc = new RTCPeerConnection();
    session = { client, pipeline, endpoint, element, pc, stream, last: null };
    await client.on(endpoint, 'IceCandidateFound', (data) => {
      const c = data.candidate;
      pc.addIceCandidate({ candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex }).catch(() => {});
    });
    await client.on(element, '*', onFilterEvent);
    await client.invoke(endpoint, 'connect', { sink: element });
    await client.invoke(element, 'connect', { sink: endpoint });
    pc.onicecandidate = (e) => {
      if (e.candidate) client.invoke(endpoint, 'addIceCandidate', { candidate: e.candidate.toJSON() }).catch(() => {});
    };
    pc.ontrack = (e) => {
      if (e.track.kind === 'video') $('remote').srcObject = new MediaStream([e.track]);
    };
    pc.onconnectionstatechange = () => status(pc.connectionState, pc.connectionState === 'connected' ? 'ok' : '');
    stream.getTracks().forEach((t) => pc.addTrack(t, stream));
    await pc.setLocalDescription(await pc.createOffer({ offerToReceiveVideo: true }));
    const answer = await client.invoke(endpoint, 'processOffer', { offer: pc.localDescription.sdp });
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    await client.invoke(endpoint, 'gatherCandidates');
    $('filter-name').textContent = filter;
    $('stop').disabled = false;
    $('refresh-graph').disabled = false;
    session.timer = setInterval(updateStats, 1000);
    setTimeout(showGraph, 2000);
  } catch (e) {
    status(`Failed: ${e.message}`, 'error');
    await stop();
  }
}

async function stop() {
  const s = session;
  session = null;
  if (s) {
    clearInterval(s.timer);
    s.pc.close();
    s.stream.getTracks().forEach((t) => t.stop());
    try { await s.client.release(s.pipeline); } catch (e) { /* already gone */ }
    s.client.close();
  }
  $('local').srcObject = null;
  $('remote').srcObject = null;
  $('start').disabled = false;
  $('stop').disabled = true;
  $('refresh-graph').disabled = true;
  if (!$('status').classList.contains('error')) status('Idle');
}

async function updateStats() {
  const s = session;
  if (!s) return;
  try {
    const ep = (await s.client.invoke(s.endpoint, 'getStats'))[s.endpoint];
    const fl = (await s.client.invoke(s.element, 'getStats'))[s.element];
    const now = performance.now();
    const fps = (key, obj) => (s.last ? ((obj[key] - s.last[key]) * 1000) / (now - s.last.t) : 0);
    const row = { t: now, framesDecoded: ep.framesDecoded, framesEncoded: ep.framesEncoded };
    const items = [
      ['fps in', fps('framesDecoded', ep).toFixed(1)],
      ['fps out', fps('framesEncoded', ep).toFixed(1)],
      ['server latency', `${ep.latencyRtpMsP50.toFixed(1)} ms p50 · ${ep.latencyRtpMsP99.toFixed(1)} ms p99`],
      ['filter time', `${fl.processMsP50.toFixed(2)} ms p50 · ${fl.processMsP99.toFixed(2)} ms p99`],
      ['dropped (slow filter)', fl.framesDroppedStale],
      ['dropped (encoder)', ep.framesDroppedBeforeEncoder],
      ['codecs', `${ep.receiveCodec || '—'} in, ${ep.sendCodec || '—'} out`],
      ['bitrate out', ep.encoderBitrate ? `${Math.round(ep.encoderBitrate / 1000)} kbit/s` : '—'],
    ];
    s.last = row;
    $('stats').innerHTML = items.map(([k, v]) => `<dt>${k}</dt><dd>${escape(v)}</dd>`).join('');
  } catch (e) { /* the session is ending */ }
}

async function showGraph() {
  if (!session) return;
  const res = await fetch(`/api/pipelines/${encodeURIComponent(session.pipeline)}/graph.svg`);
  if (res.ok) {
    $('graph').innerHTML = await res.text();
  } else {
    const dot = await session.client.invoke(session.pipeline, 'getGstreamerDot');
    $('graph').innerHTML = `<pre>${escape(dot).slice(0, 20000)}</pre>`;
  }
}

$('upload').addEventListener('submit', async (e) => {
  e.preventDefault();
  const file = $('wasm').files[0];
  const out = $('upload-result');
  out.className = '';
  out.textContent = 'Uploading…';
  const res = await fetch('/api/filters', {
    method: 'POST',
    headers: { Authorization: `Bearer ${$('token').value}`, 'Content-Type': 'application/wasm' },
    body: file,
  });
  const body = await res.json().catch(() => ({}));
  if (res.ok) {
    out.className = 'ok';
    out.textContent = `Uploaded ${body.name}@${body.version} (${body.format}).`;
    await loadFilters(body.name);
  } else {
    out.className = 'error';
    out.textContent = body.error || `Upload failed (${res.status})`;
  }
});

$('filter').addEventListener('change', showRegion);
$('start').addEventListener('click', start);
$('stop').addEventListener('click', stop);
$('refresh-graph').addEventListener('click', showGraph);
loadFilters().catch((e) => status(`Cannot list filters: ${e.message}`, 'error'));
