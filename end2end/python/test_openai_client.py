"""The official openai package against the gateway: plain and streamed chat, the stream helper,
models, embeddings and speech; the gateway's errors arrive as the package's typed exceptions.

Needs GOBLIN_API_URL (the server's /v1 URL) and GOBLIN_API_TOKEN (a token with scope chat), with a
provider named `openai` and one named `elevenlabs` that point at the mock upstream.
"""

import os
import unittest

import openai
from openai import OpenAI

BASE = os.environ["GOBLIN_API_URL"]
TOKEN = os.environ["GOBLIN_API_TOKEN"]
CHAT = "openai/gpt-4o-mini"


def client(token=TOKEN):
    # No retries: each test sees exactly what the gateway answered.
    return OpenAI(base_url=BASE, api_key=token, max_retries=0, timeout=30)


class Chat(unittest.TestCase):
    def test_plain(self):
        r = client().chat.completions.create(model=CHAT, messages=[{"role": "user", "content": "hello goblins"}])
        self.assertEqual(r.choices[0].message.content, "Mock reply to: hello goblins")
        self.assertEqual(r.choices[0].finish_reason, "stop")
        self.assertGreater(r.usage.prompt_tokens, 0)

    def test_stream_with_usage(self):
        chunks = list(
            client().chat.completions.create(
                model=CHAT,
                messages=[{"role": "user", "content": "hello goblins in the cave"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        self.assertEqual(text, "Mock reply to: hello goblins in the cave")
        self.assertEqual(chunks[-1].choices, [])
        self.assertGreater(chunks[-1].usage.completion_tokens, 0)

    def test_stream_helper_final_completion(self):
        with client().chat.completions.stream(
            model=CHAT, messages=[{"role": "user", "content": "tell the goblins"}]
        ) as stream:
            for _ in stream:
                pass
            final = stream.get_final_completion()
        self.assertEqual(final.choices[0].message.content, "Mock reply to: tell the goblins")

    def test_models(self):
        ids = [m.id for m in client().models.list()]
        self.assertIn(CHAT, ids)

    def test_embeddings(self):
        r = client().embeddings.create(model="openai/text-embedding-3-small", input=["goblins dig", "tunnels"])
        self.assertEqual(len(r.data), 2)
        self.assertGreater(len(r.data[0].embedding), 8)

    def test_speech(self):
        audio = client().audio.speech.create(
            model="elevenlabs/eleven_multilingual_v2", voice="alloy", input="Hello from the cave"
        )
        self.assertTrue(audio.content.startswith(b"ID3"))


class Errors(unittest.TestCase):
    def ask(self, model, **kw):
        return client(**kw).chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])

    def test_unknown_model(self):
        with self.assertRaises(openai.NotFoundError) as e:
            self.ask("no-such-model")
        self.assertEqual(e.exception.code, "model_not_found")

    def test_bad_token(self):
        with self.assertRaises(openai.AuthenticationError):
            self.ask(CHAT, token="not-a-token")

    def test_bad_request(self):
        with self.assertRaises(openai.BadRequestError) as e:
            client().chat.completions.create(model=CHAT, messages="not a list")
        self.assertIn("messages", str(e.exception))

    def test_upstream_rate_limit(self):
        with self.assertRaises(openai.RateLimitError):
            self.ask("openai/gpt-4o-mini@fail=429")

    def test_every_provider_failing(self):
        with self.assertRaises(openai.InternalServerError) as e:
            self.ask("openai/gpt-4o-mini@fail=500")
        self.assertIn("every provider for this model failed", str(e.exception))

    def test_stream_cut_midway_raises(self):
        stream = client().chat.completions.create(
            model="openai/gpt-4o-mini@cut=3",
            messages=[{"role": "user", "content": "hello goblins in the cave"}],
            stream=True,
        )
        with self.assertRaises(openai.APIError) as e:
            for _ in stream:
                pass
        self.assertIn("before the answer was complete", str(e.exception))


if __name__ == "__main__":
    unittest.main()
