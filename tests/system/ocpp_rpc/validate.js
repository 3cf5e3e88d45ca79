// Validate OCPP 1.6 payloads with ocpp-rpc's own ajv validator and schemas (independent of the
// Python ocpp package). Input: one JSON object per line on stdin:
//   {"schema": "BootNotification.req", "payload": {...}, "where": "test name / frame"}
// Output: one JSON line per invalid payload, then {"checked": N, "invalid": M}.
'use strict';
const readline = require('readline');
const [validator] = require('ocpp-rpc/lib/standard-validators');

let checked = 0;
let invalid = 0;
const rl = readline.createInterface({input: process.stdin, crlfDelay: Infinity});
rl.on('line', (line) => {
    if (!line.trim()) return;
    const item = JSON.parse(line);
    checked += 1;
    try {
        validator.validate(`urn:${item.schema}`, item.payload);
    } catch (err) {
        invalid += 1;
        console.log(JSON.stringify({where: item.where, schema: item.schema, code: err.rpcErrorCode,
                                    message: err.message, payload: item.payload}));
    }
});
rl.on('close', () => console.log(JSON.stringify({checked, invalid})));
