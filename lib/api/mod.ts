export * from "./types.ts";
export * from "./api_handler.ts";
export * from "./api_server.ts";
export * from "./parse_generate_request.ts";
export * from "./parse_chat_request.ts";
export * from "./read_json_body.ts";
export * from "./render_chat_prompt.ts";
export * from "./sse_stream.ts";
