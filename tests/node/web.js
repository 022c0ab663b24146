// The browser demo in Debian's Chromium (headless, fake camera fed from a Y4M file).
//
//   node web.js URL Y4M_FILE SCREENSHOT_DIR FILTER_WASM TOKEN
//
// Prints one JSON object per step on stdout; exit code 1 on the first failure.
'use strict';
const fs = require('fs');
const path = require('path');
const os = require('os');
const { chromium } = require('playwright-core');

const [url, y4m, shots, wasm, token] = process.argv.slice(2);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');

// Mean colour and the largest channel difference of the processed video, from a canvas.
async function sampleRemote(page) {
  return page.evaluate(() => {
    const v = document.getElementById('remote');
    if (!v.videoWidth) return { frames: 0 };
    const c = document.createElement('canvas');
    c.width = v.videoWidth;
    c.height = v.videoHeight;
    const g = c.getContext('2d');
    g.drawImage(v, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    let sum = [0, 0, 0];
    let maxChroma = 0;
    let n = 0;
    for (let i = 0; i < d.length; i += 4 * 97) {
      const [r, gg, b] = [d[i], d[i + 1], d[i + 2]];
      sum[0] += r; sum[1] += gg; sum[2] += b; n++;
      maxChroma = Math.max(maxChroma, Math.abs(r - gg), Math.abs(gg - b), Math.abs(r - b));
    }
    const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : {};
    return {
      width: v.videoWidth,
      height: v.videoHeight,
      time: v.currentTime,
      frames: q.totalVideoFrames || 0,
      mean: sum.map((s) => s / n),
      maxChroma,
    };
  });
}

async function runWith(page, filter, shot) {
  await page.selectOption('#filter', filter);
  const regionShown = await page.isVisible('#region-choice');
  // The plate filter's country (PLATE_REGION), when the test asks for one.
  if (filter === 'platedetector' && process.env.PLATE_REGION) {
    await page.selectOption('#region', process.env.PLATE_REGION);
  }
  await page.click('#start');
  const t0 = Date.now();
  let s = { frames: 0 };
  while (Date.now() - t0 < 20000) {
    await page.waitForTimeout(500);
    s = await sampleRemote(page);
    if (s.frames > 45 && s.time > 1.5) break;
  }
  let plates = [];
  if (filter === 'platedetector') {
    // The plate list fills in as PlateDetected events arrive; wait for the expected plate
    // (EXPECT_PLATE) or 20 s.
    const expected = process.env.EXPECT_PLATE;
    const t1 = Date.now();
    while (Date.now() - t1 < 20000) {
      plates = await page.$$eval('#plates li', (ls) => ls.map((l) => ({
        plate: l.querySelector('.plate').textContent,
        region: l.querySelector('.region') ? l.querySelector('.region').textContent : 'auto',
        thumbnail: (() => {
          // The thumbnail's mean gray level (null without one).
          const img = l.querySelector('img');
          if (!img || !img.complete || !img.naturalWidth) return null;
          const c = document.createElement('canvas');
          c.width = img.naturalWidth;
          c.height = img.naturalHeight;
          c.getContext('2d').drawImage(img, 0, 0);
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let sum = 0;
          for (let i = 0; i < d.length; i += 4) sum += (d[i] + d[i + 1] + d[i + 2]) / 3;
          return sum / (d.length / 4);
        })(),
      })));
      if (expected ? plates.some((p) => p.plate === expected) : plates.length > 0) break;
      await page.waitForTimeout(250);
    }
  }
  const status = await page.textContent('#status');
  const stats = await page.textContent('#stats');
  await page.waitForTimeout(1500); // let the stats and graph panels fill in
  const graph = await page.evaluate(() => document.querySelector('#graph svg, #graph pre') ? document.querySelector('#graph').innerHTML.length : 0);
  await page.screenshot({ path: path.join(shots, shot), fullPage: true });
  await page.click('#stop');
  return { step: filter, status, sample: s, statsText: stats, graphBytes: graph, plates, regionShown };
}

(async () => {
  fs.mkdirSync(shots, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'prism-chromium-'));
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream', `--use-file-for-fake-video-capture=${y4m}`,
      '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--no-first-run',
    ],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const consoleErrors = [];
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    await page.goto(url);
    await page.waitForSelector('#filter option', { state: 'attached' });
    const filters = await page.$$eval('#filter option', (os) => os.map((o) => o.value));
    say({ step: 'loaded', filters });

    // A file that is not a filter: the server's words appear on the page.
    const junk = path.join(profile, 'junk.wasm');
    fs.writeFileSync(junk, 'this is not WebAssembly');
    await page.fill('#token', token);
    await page.setInputFiles('#wasm', junk);
    await page.click('#upload button');
    await page.waitForSelector('#upload-result.error');
    say({ step: 'bad-upload', message: await page.textContent('#upload-result') });

    // Upload the filter through the page; it is selected at once.
    await page.setInputFiles('#wasm', wasm);
    await page.click('#upload button');
    await page.waitForSelector('#upload-result.ok');
    say({ step: 'upload', message: await page.textContent('#upload-result'), selected: await page.inputValue('#filter') });

    say(await runWith(page, await page.inputValue('#filter'), 'uploaded-filter.png'));
    say(await runWith(page, 'passthrough', 'passthrough.png'));
    say(await runWith(page, 'platedetector', 'platedetector.png'));
    say({ step: 'done', consoleErrors });
  } finally {
    await browser.close();
  }
})().catch((e) => { say({ error: String(e && e.stack || e) }); process.exit(1); });
