// A minimal Kurento Protocol client (JSON-RPC 2.0 over WebSocket), the calls a Kurento
// tutorial app makes: create / invoke / subscribe / release, events as callbacks.
'use strict';

export class KurentoClient {
  constructor(url) {
    this.url = url;
    this.nextId = 1;
    this.pending = new Map();
    this.handlers = new Map(); // "objectId|type" or "objectId|*" -> callback
    this.sessionId = undefined;
  }

  open() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      ws.onopen = () => resolve(this);
      ws.onerror = () => reject(new Error(`cannot connect to ${this.url}`));
      ws.onclose = () => {
        for (const { reject } of this.pending.values()) reject(new Error('connection closed'));
        this.pending.clear();
      };
      ws.onmessage = (msg) => this.onMessage(JSON.parse(msg.data));
    });
  }

  onMessage(msg) {
    if (msg.method === 'onEvent') {
      const v = msg.params.value;
      for (const key of [`${v.object}|${v.type}`, `${v.object}|*`]) {
        const h = this.handlers.get(key);
        if (h) h(v.data, v.type);
      }
      return;
    }
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    if (msg.error) {
      const e = new Error(msg.error.message);
      e.code = msg.error.code;
      p.reject(e);
    } else {
      if (msg.result && msg.result.sessionId) this.sessionId = msg.result.sessionId;
      p.resolve(msg.result || {});
    }
  }

  call(method, params = {}) {
    const id = this.nextId++;
    if (this.sessionId) params.sessionId = this.sessionId;
    this.ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }

  async create(type, constructorParams = {}) {
    return (await this.call('create', { type, constructorParams })).value;
  }

  async invoke(object, operation, operationParams = {}) {
    return (await this.call('invoke', { object, operation, operationParams })).value;
  }

  async on(object, type, callback) {
    this.handlers.set(`${object}|${type}`, callback);
    return (await this.call('subscribe', { object, type })).value;
  }

  release(object) {
    return this.call('release', { object });
  }

  close() {
    if (this.ws) this.ws.close();
  }
}
