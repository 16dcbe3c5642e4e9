"""A tiny JSON client over tornado's AsyncHTTPClient for in-process API tests."""

import json

import tornado.httpclient


class Api:
    def __init__(self, base_url, *, max_clients=10):
        self.base_url = base_url.replace("localhost", "127.0.0.1")
        self.client = tornado.httpclient.AsyncHTTPClient(force_instance=True,
                                                         max_clients=max_clients)

    async def call(self, method, path, body=None, headers=None):
        raw = None
        if body is not None:
            raw = body if isinstance(body, bytes) else json.dumps(body)
        headers = dict(headers or {})
        if raw is not None:
            headers.setdefault("Content-Type", "application/json")
        response = await self.client.fetch(
            self.base_url + path, method=method, body=raw, headers=headers, raise_error=False,
            allow_nonstandard_methods=True, request_timeout=60)
        data = None
        if response.body:
            json_body = "json" in response.headers.get("Content-Type", "")
            data = json.loads(response.body) if json_body else response.body.decode()
        return response.code, data, response.headers

    def close(self):
        self.client.close()
