// ESLint for the explorers' browser code (minillm_lib/viz/static): `make lint` runs it.
import js from "@eslint/js";
import globals from "globals";

export default [
  js.configs.recommended,
  {
    files: ["**/*.js"],
    languageOptions: {
      ecmaVersion: 2020,
      sourceType: "script",  // plain <script> files, no modules: they run inline in any page
      globals: { ...globals.browser },
    },
    rules: {
      "no-var": "off",  // the explorers are ES5-style on purpose: they run in old notebook front ends
      eqeqeq: ["error", "always"],
      "no-implicit-globals": "error",
    },
  },
];
