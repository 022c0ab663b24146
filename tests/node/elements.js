// Kurento's player, recorder, hub and filter elements through the real kurento-client:
// PlayerEndpoint → GStreamerFilter → FaceOverlayFilter → RecorderEndpoint (stopped by the end
// of the stream), Composite and DispatcherOneToMany ports, and a server-side error.
//
//   node elements.js WS_URL CONFIG_FILE
//
// CONFIG_FILE: {"input": "/abs/clip.webm", "output": "/abs/out.webm", "picture": "/abs/a.png"}.
// Prints JSON lines on stdout: {"info"} (getVideoInfo while playing), then {"done"} with what
// was seen. Errors: {"error"} and exit code 1.
'use strict';
const fs = require('fs');
const kurento = require('kurento-client');

const [url, configFile] = process.argv.slice(2);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const fail = (e) => { say({ error: String(e && e.message || e) }); process.exit(1); };

(async () => {
  const config = JSON.parse(fs.readFileSync(configFile, 'utf8'));
  const client = await kurento(url, { failAfter: 3 });
  const pipeline = await client.create('MediaPipeline');
  const player = await pipeline.create('PlayerEndpoint', { uri: 'file://' + config.input });
  const recorder = await pipeline.create('RecorderEndpoint', {
    uri: 'file://' + config.output,
    mediaProfile: 'WEBM',
    stopOnEndOfStream: true,
  });
  const flip = await pipeline.create('GStreamerFilter', { command: 'videoflip method=horizontal-flip' });
  const face = await pipeline.create('FaceOverlayFilter');
  await face.setOverlayedImage('file://' + config.picture, -0.35, -1.2, 1.6, 1.6);
  const events = [];
  const ended = new Promise((resolve) => player.on('EndOfStream', () => { events.push('EndOfStream'); resolve(); }));
  const stopped = new Promise((resolve) => recorder.on('Stopped', () => { events.push('Stopped'); resolve(); }));
  recorder.on('Recording', () => events.push('Recording'));
  player.on('UriEndpointStateChanged', (ev) => events.push('State:' + ev.state));
  await player.connect(flip);
  await flip.connect(face);
  await face.connect(recorder);
  await recorder.record();
  await player.play();
  const info = await player.getVideoInfo();
  say({ info: { isSeekable: info.isSeekable, duration: info.duration } });
  const command = await flip.getCommand();
  await ended;
  await stopped;

  const composite = await pipeline.create('Composite');
  const port = await composite.createHubPort();
  await player.connect(port);
  const dispatcher = await pipeline.create('DispatcherOneToMany');
  const source = await dispatcher.createHubPort();
  const viewer = await dispatcher.createHubPort();
  await dispatcher.setSource(source);
  await dispatcher.removeSource();
  let refused = null;
  try {
    await pipeline.create('RecorderEndpoint', { uri: 'file://' + config.output + '.flv', mediaProfile: 'FLV' });
  } catch (e) {
    refused = e.message;
  }
  say({ done: true, events, command, port: port.id, viewer: viewer.id, refused, state: await player.getState() });
  await pipeline.release();
  client.close();
  process.exit(0);
})().catch(fail);
