#!/usr/bin/env node
// A STRICT OCPP 1.6J central system for conformance tests, built on the npm package ocpp-rpc
// (ajv validation against the OCPP 1.6 JSON schemas), independent of the Python `ocpp`
// package the charger uses.  Driven by tests/system/ocpp_rpc/harness.py.
//
//   node csms.js PORT          (0 = ephemeral; listens on 127.0.0.1 only)
//
// stdout: one JSON object per line, each with "ev" and "t" (seconds since the epoch):
//   {"ev":"listening","port":N}                          always the first line
//   {"ev":"connect","id":ID,"protocol":"ocpp1.6"|null,"endpoint":"/ocpp","remote":ADDR}
//   {"ev":"rx"|"tx","id":ID,"frame":"<raw text>","type":"CALL"|"CALLRESULT"|"CALLERROR",
//    "msgId":..., "action":..., "payload":...}           every frame received / sent
//   {"ev":"strictValidationFailure","id":ID,"outbound":bool,"isCall":bool,"method":...,
//    "messageId":...,"params":...,"result":...,"error":{"code","message","details"}}
//        outbound=false: the CHARGER's frame failed the schema (its fault);
//        outbound=true: this server refused to send one of its own (a test's deliberately bad call)
//   {"ev":"badMessage","id":ID,"frame":...,"error":{...},"response":[...]}
//   {"ev":"result"|"error","ref":REF,"id":ID,"method":...,"result"|"error":...}
//        the outcome of a call asked for on stdin
//   {"ev":"close","id":ID,"code":N,"reason":...}, {"ev":"upgradeAborted",...},
//   {"ev":"commandError",...}, {"ev":"exit"}
//
// stdin: one JSON command per line:
//   {"cmd":"call","id":"CP1","method":"ChangeConfiguration","params":{...},"ref":"r1"}
//   {"cmd":"idTag","idTag":"BLOCKED-1","status":"Blocked"}   Authorize/Start answer for a tag
//   {"cmd":"close","id":"CP1"}                               close that charge point's socket
// SIGTERM / SIGINT / end of stdin: close everything, exit 0.
'use strict';

const readline = require('node:readline');
const { RPCServer, createRPCError } = require('ocpp-rpc');

const port = Number(process.argv[2] ?? 0);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`usage: node csms.js PORT   (0 = ephemeral), got ${process.argv[2]}\n`);
    process.exit(2);
}

function emit(obj) {
    process.stdout.write(JSON.stringify({ t: Date.now() / 1000, ...obj }) + '\n');
}

function errorInfo(err) {
    if (!err) return null;
    return {
        code: err.rpcErrorCode ?? err.code ?? err.name ?? 'Error',
        message: err.rpcErrorMessage || err.message || String(err),
        details: err.details ?? null,
    };
}

const MESSAGE_TYPES = { 2: 'CALL', 3: 'CALLRESULT', 4: 'CALLERROR' };

const server = new RPCServer({
    protocols: ['ocpp1.6'],
    strictMode: true,
    pingIntervalMs: 0,     // the charger pings; keep the log free of our own
    callTimeoutMs: 10000,
});

const clients = new Map();     // identity -> RPCServerClient (the latest connection)
const idTags = new Map();      // idTag -> status other than Accepted
let nextTransactionId = 1;

function idTagInfo(idTag) {
    return { status: idTags.get(idTag) ?? 'Accepted' };
}

server.on('upgradeAborted', ({ error, identity }) => {
    emit({ ev: 'upgradeAborted', id: identity, error: errorInfo(error) });
});

server.on('client', (client) => {
    const id = client.identity;
    clients.set(id, client);
    emit({
        ev: 'connect', id, protocol: client.protocol ?? null,
        endpoint: client.handshake.endpoint, remote: client.handshake.remoteAddress,
    });

    // Message ids of calls in flight per direction, so that results can be named.
    const actionsOf = { rx: new Map(), tx: new Map() };
    client.on('message', ({ message, outbound }) => {
        const dir = outbound ? 'tx' : 'rx';
        const text = typeof message === 'string' ? message : message.toString('utf8');
        const event = { ev: dir, id, frame: text };
        try {
            const frame = JSON.parse(text);
            if (Array.isArray(frame)) {
                event.type = MESSAGE_TYPES[frame[0]] ?? String(frame[0]);
                event.msgId = frame[1];
                if (frame[0] === 2) {
                    event.action = frame[2];
                    event.payload = frame[3];
                    actionsOf[dir].set(frame[1], frame[2]);
                } else {
                    // A result answers a call that went the other way.
                    const calls = actionsOf[outbound ? 'rx' : 'tx'];
                    event.action = calls.get(frame[1]) ?? null;
                    calls.delete(frame[1]);
                    event.payload = frame[0] === 3 ? frame[2] : frame.slice(2);
                }
            }
        } catch (err) {
            // Not JSON: ocpp-rpc reports it as a badMessage as well.
        }
        emit(event);
    });
    client.on('strictValidationFailure', (e) => {
        emit({
            ev: 'strictValidationFailure', id, outbound: e.outbound, isCall: e.isCall,
            method: e.method, messageId: e.messageId, params: e.params ?? null,
            result: e.result ?? null, error: errorInfo(e.error),
        });
    });
    client.on('badMessage', ({ buffer, error, response }) => {
        emit({
            ev: 'badMessage', id, frame: Buffer.isBuffer(buffer) ? buffer.toString('utf8') : String(buffer),
            error: errorInfo(error), response: response ?? null,
        });
    });
    client.on('close', ({ code, reason }) => {
        if (clients.get(id) === client) clients.delete(id);
        emit({ ev: 'close', id, code, reason: reason ? String(reason) : '' });
    });

    client.handle('BootNotification', () => ({
        status: 'Accepted', currentTime: new Date().toISOString(), interval: 300,
    }));
    client.handle('Heartbeat', () => ({ currentTime: new Date().toISOString() }));
    client.handle('StatusNotification', () => ({}));
    client.handle('Authorize', ({ params }) => ({ idTagInfo: idTagInfo(params.idTag) }));
    client.handle('StartTransaction', ({ params }) => ({
        transactionId: nextTransactionId++, idTagInfo: idTagInfo(params.idTag),
    }));
    client.handle('StopTransaction', ({ params }) => (
        params.idTag === undefined ? {} : { idTagInfo: idTagInfo(params.idTag) }));
    client.handle('MeterValues', () => ({}));
    client.handle('DataTransfer', () => ({ status: 'UnknownVendorId' }));
    // Security Whitepaper (ed. 2) messages a charge point sends; ocpp-rpc has their schemas.
    client.handle('SecurityEventNotification', () => ({}));
    client.handle('SignCertificate', () => ({ status: 'Accepted' }));
    client.handle('LogStatusNotification', () => ({}));
    client.handle(({ method }) => {
        throw createRPCError('NotImplemented', `${method} is not implemented by this test CSMS`);
    });
});

async function command(line) {
    if (!line.trim()) return;
    let cmd;
    try {
        cmd = JSON.parse(line);
    } catch (err) {
        emit({ ev: 'commandError', line, error: errorInfo(err) });
        return;
    }
    if (cmd.cmd === 'call') {
        const { id, method, params = {}, ref = null } = cmd;
        const client = clients.get(id);
        if (!client) {
            emit({ ev: 'error', ref, id, method, error: { code: 'NotConnected', message: `no charge point ${id} connected`, details: null } });
            return;
        }
        try {
            const result = await client.call(method, params);
            emit({ ev: 'result', ref, id, method, result });
        } catch (err) {
            emit({ ev: 'error', ref, id, method, error: errorInfo(err) });
        }
    } else if (cmd.cmd === 'idTag') {
        if (cmd.status === 'Accepted') idTags.delete(cmd.idTag);
        else idTags.set(cmd.idTag, cmd.status);
        emit({ ev: 'idTag', idTag: cmd.idTag, status: cmd.status });
    } else if (cmd.cmd === 'close') {
        const client = clients.get(cmd.id);
        if (client) await client.close({ code: 1000, reason: 'closed by test', force: true });
        else emit({ ev: 'commandError', line, error: { code: 'NotConnected', message: `no charge point ${cmd.id} connected`, details: null } });
    } else {
        emit({ ev: 'commandError', line, error: { code: 'UnknownCommand', message: `unknown cmd ${cmd.cmd}`, details: null } });
    }
}

let stopping = false;
async function stop() {
    if (stopping) return;
    stopping = true;
    setTimeout(() => { emit({ ev: 'exit', forced: true }); process.exit(0); }, 1500).unref();
    try {
        await server.close({ code: 1001, reason: 'central system stopping', force: true });
    } catch (err) {
        // exiting anyway
    }
    emit({ ev: 'exit' });
    process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

(async () => {
    const httpServer = await server.listen(port, '127.0.0.1');
    emit({ ev: 'listening', port: httpServer.address().port });
    const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
    rl.on('line', (line) => { command(line); });
    rl.on('close', stop);   // the test process went away: do not linger
})().catch((err) => {
    process.stderr.write(`csms.js: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
});
