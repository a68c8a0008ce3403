/**
 * The part of onnxruntime's C API function table (`struct OrtApi`, onnxruntime_c_api.h) that the
 * binding (ort_api.ts) uses: the API version asked for, each function's index in the table and
 * its FFI signature, the tensor element types and the error code names.
 * @module
 */

/** The API version asked of `GetApi`: 1.20's, which has every function used here. */
export const ORT_API_VERSION = 20;

/** Indices into the `OrtApi` function table (onnxruntime_c_api.h, `struct OrtApi`). */
export const OrtApiIndex = {
  GetErrorCode: 1,
  GetErrorMessage: 2,
  CreateEnv: 3,
  CreateSessionFromArray: 8,
  Run: 9,
  CreateSessionOptions: 10,
  SetSessionExecutionMode: 13,
  DisableMemPattern: 17,
  DisableCpuMemArena: 19,
  SetSessionGraphOptimizationLevel: 23,
  SetIntraOpNumThreads: 24,
  SetInterOpNumThreads: 25,
  CreateTensorWithDataAsOrtValue: 49,
  CreateCpuMemoryInfo: 69,
  ReleaseEnv: 92,
  ReleaseStatus: 93,
  ReleaseMemoryInfo: 94,
  ReleaseSession: 95,
  ReleaseValue: 96,
  ReleaseSessionOptions: 100,
  CreateEnvWithGlobalThreadPools: 119,
  DisablePerSessionThreads: 120,
  CreateThreadingOptions: 121,
  ReleaseThreadingOptions: 122,
  AddSessionConfigEntry: 130,
  SetGlobalIntraOpNumThreads: 147,
  SetGlobalSpinControl: 149,
  AddInitializer: 150,
  CreatePrepackedWeightsContainer: 166,
  ReleasePrepackedWeightsContainer: 167,
  CreateSessionFromArrayWithPrepackedWeightsContainer: 169,
  AddExternalInitializersFromFilesInMemory: 279,
} as const;

/** ONNXTensorElementDataType values of the tensors the engine makes. */
export const TensorType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, FLOAT16: 10 } as const;
export type TensorTypeId = typeof TensorType[keyof typeof TensorType];

/** OrtErrorCode names, by value. */
export const ORT_ERROR_NAMES = [
  "ORT_OK",
  "ORT_FAIL",
  "ORT_INVALID_ARGUMENT",
  "ORT_NO_SUCHFILE",
  "ORT_NO_MODEL",
  "ORT_ENGINE_ERROR",
  "ORT_RUNTIME_EXCEPTION",
  "ORT_INVALID_PROTOBUF",
  "ORT_MODEL_LOADED",
  "ORT_NOT_IMPLEMENTED",
  "ORT_INVALID_GRAPH",
  "ORT_EP_FAIL",
];

const STATUS = "pointer" as const;
/** The signature of each function of the table that is used. */
export const FNS = {
  GetErrorCode: { parameters: ["pointer"], result: "i32" },
  GetErrorMessage: { parameters: ["pointer"], result: "pointer" },
  CreateEnv: { parameters: ["i32", "buffer", "buffer"], result: STATUS },
  CreateSessionFromArray: {
    parameters: ["pointer", "buffer", "usize", "pointer", "buffer"],
    result: STATUS,
  },
  Run: {
    parameters: ["pointer", "pointer", "buffer", "buffer", "usize", "buffer", "usize", "buffer"],
    result: STATUS,
  },
  CreateSessionOptions: { parameters: ["buffer"], result: STATUS },
  SetSessionExecutionMode: { parameters: ["pointer", "i32"], result: STATUS },
  DisableMemPattern: { parameters: ["pointer"], result: STATUS },
  DisableCpuMemArena: { parameters: ["pointer"], result: STATUS },
  SetSessionGraphOptimizationLevel: { parameters: ["pointer", "i32"], result: STATUS },
  SetIntraOpNumThreads: { parameters: ["pointer", "i32"], result: STATUS },
  SetInterOpNumThreads: { parameters: ["pointer", "i32"], result: STATUS },
  CreateTensorWithDataAsOrtValue: {
    parameters: ["pointer", "pointer", "usize", "buffer", "usize", "i32", "buffer"],
    result: STATUS,
  },
  CreateCpuMemoryInfo: { parameters: ["i32", "i32", "buffer"], result: STATUS },
  ReleaseEnv: { parameters: ["pointer"], result: "void" },
  ReleaseStatus: { parameters: ["pointer"], result: "void" },
  ReleaseMemoryInfo: { parameters: ["pointer"], result: "void" },
  ReleaseSession: { parameters: ["pointer"], result: "void" },
  ReleaseValue: { parameters: ["pointer"], result: "void" },
  ReleaseSessionOptions: { parameters: ["pointer"], result: "void" },
  AddSessionConfigEntry: { parameters: ["pointer", "buffer", "buffer"], result: STATUS },
  CreateEnvWithGlobalThreadPools: { parameters: ["i32", "buffer", "pointer", "buffer"], result: STATUS },
  DisablePerSessionThreads: { parameters: ["pointer"], result: STATUS },
  CreateThreadingOptions: { parameters: ["buffer"], result: STATUS },
  ReleaseThreadingOptions: { parameters: ["pointer"], result: "void" },
  SetGlobalIntraOpNumThreads: { parameters: ["pointer", "i32"], result: STATUS },
  SetGlobalSpinControl: { parameters: ["pointer", "i32"], result: STATUS },
  AddInitializer: { parameters: ["pointer", "buffer", "pointer"], result: STATUS },
  CreatePrepackedWeightsContainer: { parameters: ["buffer"], result: STATUS },
  ReleasePrepackedWeightsContainer: { parameters: ["pointer"], result: "void" },
  CreateSessionFromArrayWithPrepackedWeightsContainer: {
    parameters: ["pointer", "buffer", "usize", "pointer", "pointer", "buffer"],
    result: STATUS,
  },
  AddExternalInitializersFromFilesInMemory: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "usize"],
    result: STATUS,
  },
} as const satisfies Record<keyof typeof OrtApiIndex, Deno.ForeignFunction>;

/** The table's functions, callable. */
export type Fns = { [K in keyof typeof FNS]: Deno.UnsafeFnPointer<(typeof FNS)[K]> };
