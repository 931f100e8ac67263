package config

// SettingNames exports settingNames (every table and setting Load knows,
// from the toml tags) to the external tests.
func SettingNames() []string { return settingNames }
